package store

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// formatted counts the times fmt formats it.
type formatted struct{ n *int }

func (f formatted) String() string { *f.n++; return "x" }

// Badger's info and debug lines go to zap's debug level, and are not even
// formatted when that level is off: Badger logs one at every write.
func TestBadgerLinesAreFormattedOnlyWhenLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := badgerLogger{l: zap.New(core)}
	n := 0
	l.Debugf("writing %v", formatted{&n})
	l.Infof("compacting %v", formatted{&n})
	if n != 0 || logs.Len() != 0 {
		t.Fatalf("at info level: formatted %d times, %d lines logged; want none", n, logs.Len())
	}
	l.Errorf("failed %v ", formatted{&n})
	if n != 1 || logs.Len() != 1 || logs.All()[0].Message != "failed x" || logs.All()[0].Level != zap.ErrorLevel {
		t.Fatalf("error line: formatted %d times, logged %v", n, logs.All())
	}

	core, logs = observer.New(zap.DebugLevel)
	badgerLogger{l: zap.New(core)}.Infof("compacting %v", formatted{&n})
	if logs.Len() != 1 || logs.All()[0].Level != zap.DebugLevel {
		t.Fatalf("an info line at debug level: %v", logs.All())
	}
}
