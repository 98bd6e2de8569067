//go:build linux || darwin || freebsd

package store

import "syscall"

// freeBytes is the space an unprivileged writer may still use on the
// device that holds dir; ok is false when it cannot be told.
func freeBytes(dir string) (free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
