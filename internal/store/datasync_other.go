//go:build !linux

package store

import "os"

// datasync: where fdatasync is not offered, a full sync.
func datasync(f *os.File) error { return f.Sync() }
