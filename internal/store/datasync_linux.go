package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync writes f's data, and the metadata needed to read it back, to
// disk. A journal segment is rewritten in place once reused, so its syncs
// need no metadata at all.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
