package store

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestMetaAndRequestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	events := map[string]*Event{
		"a fresh event": {
			ID: "01M8184RAZ1MHK7TK0G983YCWT", Inbox: "hotmart", ReceivedAt: now,
			Method: "POST", Path: "/hooks/hotmart", RawQuery: "a=1&b=é",
			Header:   http.Header{"X-Hotmart-Hottok": {"tok"}, "Accept": {"a", "b"}, "Empty": {}},
			Body:     []byte(`{"id":"evt-1"}`),
			Verified: "hotmart", DedupeKey: "evt-1", State: Pending, NextAttemptAt: now,
		},
		"a dead event replayed, no body": {
			ID: "01M8184RAZ1MHK7TK0G983YCWU", Inbox: "stripe", ReceivedAt: now,
			Method: "PUT", Header: http.Header{}, Body: []byte{}, Verified: "none", State: Dead,
			Attempts: 300, ReplayedAfter: 6, FinishedAt: now.Add(time.Hour),
			request: requestRef{seq: 9, off: 1 << 33, size: 70000, crc: 0xfedcba98},
		},
	}
	for name, want := range events {
		t.Run(name, func(t *testing.T) {
			var got Event
			if err := decodeMeta(encodeMeta(want), &got); err != nil {
				t.Fatal(err)
			}
			if got.Header != nil || got.Body != nil {
				t.Errorf("the meta holds the request: %v %q", got.Header, got.Body)
			}
			if err := decodeRequest(encodeRequest(nil, want), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, *want)
			}
		})
	}
}

func TestMetaCorruptIsAnError(t *testing.T) {
	good := encodeMeta(&Event{ID: "x", Inbox: "in"})
	for name, v := range map[string][]byte{
		"empty":                  nil,
		"unknown version":        append([]byte{9}, good[1:]...),
		"version 1":              append([]byte{1}, good[1:]...),
		"truncated":              good[:len(good)-1],
		"trailing bytes":         append(good[:len(good):len(good)], 0),
		"huge count":             {metaVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"no place":               good[:len(good)-refLen],
		"version 2 with a place": append([]byte{metaVersionInlineRequest}, good[1:]...),
	} {
		if err := decodeMeta(v, new(Event)); !errors.Is(err, errMetaCorrupt) {
			t.Errorf("%s: err = %v, want errMetaCorrupt", name, err)
		}
	}
}

func TestRequestCorruptIsAnError(t *testing.T) {
	good := encodeRequest(nil, &Event{Header: http.Header{"A": {"b"}}, Body: []byte("body")})
	for name, v := range map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{9}, good[1:]...),
		"truncated":       good[:4],
		"huge count":      {requestVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if err := decodeRequest(v, new(Event)); !errors.Is(err, errMetaCorrupt) {
			t.Errorf("%s: err = %v, want errMetaCorrupt", name, err)
		}
	}
}

// A version 2 meta, written by a store that kept requests in Badger, reads
// with no place for the request.
func TestMetaVersion2Reads(t *testing.T) {
	want := &Event{ID: "01M8184RAZ1MHK7TK0G983YCWT", Inbox: "in", State: Pending, Attempts: 2}
	v3 := encodeMeta(want)
	v2 := append([]byte{metaVersionInlineRequest}, v3[1:len(v3)-refLen]...)
	var got Event
	if err := decodeMeta(v2, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("got %+v, want %+v", got, *want)
	}
}

// FuzzDecodeMeta: a damaged record is an error, never a panic or a huge
// allocation; what decodes encodes back to the same bytes' meaning.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(&Event{ID: "01M8184RAZ1MHK7TK0G983YCWT", Inbox: "in", State: Pending}))
	f.Add([]byte{metaVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		var e Event
		if decodeMeta(v, &e) != nil {
			return
		}
		var again Event
		if err := decodeMeta(encodeMeta(&e), &again); err != nil || !reflect.DeepEqual(e, again) {
			t.Fatalf("decoded %+v does not survive a round trip: %+v, %v", e, again, err)
		}
	})
}

// FuzzDecodeRequest is FuzzDecodeMeta for the request record.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(nil, &Event{Header: http.Header{"A": {"1", "2"}}, Body: []byte(`{"id":1}`)}))
	f.Add([]byte{requestVersion, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var e Event
		if decodeRequest(v, &e) != nil {
			return
		}
		var again Event
		if err := decodeRequest(encodeRequest(nil, &e), &again); err != nil || !reflect.DeepEqual(e, again) {
			t.Fatalf("decoded %+v does not survive a round trip: %+v, %v", e, again, err)
		}
	})
}
