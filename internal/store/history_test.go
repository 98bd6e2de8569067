package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestListCursor: a cursor is an event id as a previous page handed it out,
// in either case; anything else is ErrBadCursor, which the admin API answers
// with a 400, never a failure of the store.
func TestListCursor(t *testing.T) {
	db, _ := openTest(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var ids []string // newest first
	for i := range 5 {
		e := &Event{Inbox: "a", ReceivedAt: t0.Add(time.Duration(i) * time.Minute)}
		if _, _, err := db.Enqueue(context.Background(), e, Limits{}); err != nil {
			t.Fatal(err)
		}
		ids = slices.Insert(ids, 0, e.ID)
	}
	_, next, err := db.List(Query{Limit: 2})
	if err != nil || next != ids[1] {
		t.Fatalf("first page: cursor %q, %v; want %s", next, err, ids[1])
	}

	tests := []struct {
		name   string
		cursor string
		want   []string
		bad    bool
	}{
		{"the next cursor", next, ids[2:4], false},
		{"the next cursor in lower case", strings.ToLower(next), ids[2:4], false},
		{"an event id that is not stored", ids[1][:25] + "0", ids[2:4], false},
		{"three letters", "abc", nil, true},
		{"zero", "0", nil, true},
		{"an id past the largest", "8" + strings.Repeat("Z", 25), nil, true},
		{"an id with a letter outside the alphabet", ids[0][:25] + "U", nil, true},
		{"an id with a slash", ids[0][:25] + "/", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, q := range []Query{{Limit: 2, Cursor: tt.cursor}, {Inbox: "a", State: Pending, Limit: 2, Cursor: tt.cursor}} {
				evs, _, err := db.List(q)
				if tt.bad {
					if !errors.Is(err, ErrBadCursor) {
						t.Errorf("List(%+v) = %v, want ErrBadCursor", q, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("List(%+v): %v", q, err)
				}
				var got []string
				for _, e := range evs {
					got = append(got, e.ID)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("List(%+v) = %v, want %v", q, got, tt.want)
				}
			}
		})
	}
}
