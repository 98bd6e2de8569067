package natsstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// What a deletion of a message another node deleted first returns, as
// nats.go words it: taken for done, and no other failure is.
func TestAlreadyGone(t *testing.T) {
	for _, tt := range []struct {
		err  error
		gone bool
	}{
		{jetstream.ErrMsgNotFound, true},
		{fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=500 err_code=10057 description=no message found"), true},
		{fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=400 err_code=10043 description=sequence 2 not found"), true},
		{fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=503 err_code=10008 description=JetStream system temporarily unavailable"), false},
		{errors.New("nats: timeout"), false},
	} {
		if got := alreadyGone(tt.err); got != tt.gone {
			t.Errorf("alreadyGone(%v) = %v, want %v", tt.err, got, tt.gone)
		}
	}
}
