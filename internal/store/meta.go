package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// An event is stored as two records. Its meta (everything but the request
// headers and body) is written at every arrival and attempt and read at
// every claim and record, so it is small and encoded by hand rather than as
// JSON, which cost a tenth of the server's CPU under load, most of it in the
// header map. Its request (headers and body) is written once, into the
// journal (requests.go), and is read only to deliver or show the event; the
// meta ends with where it is. Layout, after a version byte: strings as
// uvarint length + bytes, counts as uvarints, times as varint Unix
// nanoseconds (0 for the zero time), then the request's place, fixed size;
// a header is a count of names, each with a count of values; the body is
// the rest of the request record.

const (
	// metaVersion 3: the meta ends with the request's place in the journal.
	// Version 2 (no place: the request is in Badger) is still read.
	metaVersion              = 3
	metaVersionInlineRequest = 2
	requestVersion           = 1
)

// refLen: the request's place at the end of a meta: segment (8), offset
// (8), length (4), CRC-32C (4).
const refLen = 24

var errMetaCorrupt = errors.New("corrupt event record")

func encodeMeta(e *Event) []byte {
	size := 64 + refLen + len(e.ID) + len(e.Inbox) + len(e.Method) + len(e.Path) + len(e.RawQuery) +
		len(e.Verified) + len(e.DedupeKey) + len(e.State)
	b := make([]byte, 0, size)
	b = append(b, metaVersion)
	for _, s := range []string{e.ID, e.Inbox, e.Method, e.Path, e.RawQuery, e.Verified, e.DedupeKey, string(e.State)} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(e.Attempts))
	b = binary.AppendUvarint(b, uint64(e.ReplayedAfter))
	for _, t := range []time.Time{e.ReceivedAt, e.NextAttemptAt, e.FinishedAt} {
		b = appendTime(b, t)
	}
	return appendRef(b, e.request)
}

func appendRef(b []byte, r requestRef) []byte {
	b = binary.BigEndian.AppendUint64(b, r.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.off))
	b = binary.BigEndian.AppendUint32(b, uint32(r.size))
	return binary.BigEndian.AppendUint32(b, r.crc)
}

// setMetaRef writes r over the request's place in an encoded meta.
func setMetaRef(meta []byte, r requestRef) {
	appendRef(meta[:len(meta)-refLen], r)
}

// encodeRequest appends the encoding of e's headers and body to b.
func encodeRequest(b []byte, e *Event) []byte {
	size := 8 + len(e.Body)
	for name, values := range e.Header {
		size += 2 + len(name)
		for _, v := range values {
			size += 2 + len(v)
		}
	}
	b = slices.Grow(b, size)
	b = append(b, requestVersion)
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for name, values := range e.Header {
		b = appendString(b, name)
		b = binary.AppendUvarint(b, uint64(len(values)))
		for _, v := range values {
			b = appendString(b, v)
		}
	}
	return append(b, e.Body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// decodeMeta reads what encodeMeta wrote into e. It copies what it keeps:
// v belongs to Badger.
func decodeMeta(v []byte, e *Event) error {
	d := metaDecoder{b: v}
	if len(v) == 0 || v[0] != metaVersion && v[0] != metaVersionInlineRequest {
		return fmt.Errorf("%w: unknown version", errMetaCorrupt)
	}
	withRef := v[0] == metaVersion
	d.b = d.b[1:]
	var state string
	for _, s := range []*string{&e.ID, &e.Inbox, &e.Method, &e.Path, &e.RawQuery, &e.Verified, &e.DedupeKey, &state} {
		*s = d.string()
	}
	e.State = State(state)
	e.Attempts = int(d.uvarint())
	e.ReplayedAfter = int(d.uvarint())
	for _, t := range []*time.Time{&e.ReceivedAt, &e.NextAttemptAt, &e.FinishedAt} {
		*t = d.time()
	}
	if d.err != nil {
		return d.err
	}
	e.request = requestRef{}
	if withRef {
		if len(d.b) < refLen {
			return fmt.Errorf("%w: no request place", errMetaCorrupt)
		}
		r := d.b[:refLen]
		e.request = requestRef{
			seq:  binary.BigEndian.Uint64(r[0:8]),
			off:  int64(binary.BigEndian.Uint64(r[8:16])),
			size: int(binary.BigEndian.Uint32(r[16:20])),
			crc:  binary.BigEndian.Uint32(r[20:24]),
		}
		d.b = d.b[refLen:]
		if e.request.off < 0 {
			return fmt.Errorf("%w: request at offset %d", errMetaCorrupt, e.request.off)
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errMetaCorrupt, len(d.b))
	}
	return nil
}

// decodeRequest reads what encodeRequest wrote into e.Header and e.Body.
// The body is not copied: e.Body is the end of v, which must be the
// caller's to give away.
func decodeRequest(v []byte, e *Event) error {
	if len(v) == 0 || v[0] != requestVersion {
		return fmt.Errorf("%w: unknown request version", errMetaCorrupt)
	}
	// A first pass finds where the header ends and how many values it has,
	// so that one string holds every name and value and one array every
	// value list: with the map, three allocations at every delivery, not
	// one per name and per value. Each value takes a byte at least, so a corrupt count
	// fails the scan before it can size a huge array.
	scan := metaDecoder{b: v[1:]}
	names, values := scan.count(), 0
	for range names {
		scan.skip()
		n := scan.count()
		for range n {
			scan.skip()
		}
		values += n
	}
	if scan.err != nil {
		return scan.err
	}
	region := v[1 : len(v)-len(scan.b)]
	text := string(region)
	all := make([]string, values)
	d := metaDecoder{b: region}
	d.count() // names, as scanned
	header := make(http.Header, names)
	for range names {
		name := d.stringOf(text)
		n := d.count()
		for i := range n {
			all[i] = d.stringOf(text)
		}
		header[name], all = all[:n:n], all[n:]
	}
	e.Header, e.Body = header, scan.b
	return nil
}

// metaDecoder reads a meta record; after the first error every read
// returns a zero value and err keeps the error.
type metaDecoder struct {
	b   []byte
	err error
}

func (d *metaDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errMetaCorrupt, what)
	}
	d.b = nil
}

func (d *metaDecoder) uvarint() uint64 {
	n, size := binary.Uvarint(d.b)
	if size <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[size:]
	return n
}

// count is a length that must fit in what is left (each item takes at
// least a byte), so a corrupt record cannot make a huge allocation.
func (d *metaDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *metaDecoder) string() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// skip passes over a string.
func (d *metaDecoder) skip() {
	n := d.count()
	d.b = d.b[n:]
}

// stringOf is string for a decoder over the bytes of text: what it returns
// is part of text, not a copy.
func (d *metaDecoder) stringOf(text string) string {
	n := d.count()
	at := len(text) - len(d.b)
	d.b = d.b[n:]
	return text[at : at+n]
}

func (d *metaDecoder) time() time.Time {
	n, size := binary.Varint(d.b)
	if size <= 0 {
		d.fail("time")
		return time.Time{}
	}
	d.b = d.b[size:]
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
