package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The disk's share of ingest. A second caddy serves the same inbox as
// "ingest, app busy" with its store on tmpfs: every write and fdatasync
// still happens, but in memory, so no request waits on the disk and the
// kernel does no block I/O. The CPU work is the same, so the gap between
// the two figures, taken in the same rounds, is what durability on this
// machine's disk costs; the rest of the gap to `respond` is CPU.

// tmpfsRoot is where the reference store goes: /dev/shm when it is a
// tmpfs, else "" (no reference is taken).
func tmpfsRoot() string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	return findTmpfs(bufio.NewScanner(f), "/dev/shm")
}

// findTmpfs returns dir if the mount table lists a tmpfs mounted there.
func findTmpfs(mounts *bufio.Scanner, dir string) string {
	for mounts.Scan() {
		// device mountpoint fstype options dump pass
		fields := strings.Fields(mounts.Text())
		if len(fields) >= 3 && fields[1] == dir && fields[2] == "tmpfs" {
			return dir
		}
	}
	return ""
}

// startTmpfs starts the reference caddy, with its store in a directory of
// its own under root, and an app that holds every delivery for the whole
// run: nothing is ever delivered, so the store only grows, as the
// app-busy inbox's does while its app is held.
func (b *bench) startTmpfs(root string) error {
	dir, err := os.MkdirTemp(root, "hookbench-")
	if err != nil {
		return err
	}
	b.tmpfsDir = dir
	b.forgetTmpfs = onExit(func() { os.RemoveAll(dir) })
	if b.parked, err = startApp(0); err != nil {
		return err
	}
	b.parked.hold()
	config, admin, addr, err := oneInbox(b.sender.scheme.verify(), filepath.Join(dir, "storage"), "tmpfs", b.parked.url(deliveredPath), "timeout 10m")
	if err != nil {
		return err
	}
	b.tmpfsURL = "http://" + addr + "/"
	if b.tmpfs, err = startCaddy(b.bin, b.dir, "tmpfs", config, admin); err != nil {
		return err
	}
	if err := b.tmpfs.waitListening(30*time.Second, addr); err != nil {
		return err
	}
	return b.waitReady(b.tmpfsURL, 20*time.Second)
}

// stopTmpfs stops the reference caddy and frees its memory. The app lets
// go of the held deliveries first, or the graceful stop would wait on them.
func (b *bench) stopTmpfs() {
	if b.parked != nil {
		b.parked.release()
	}
	if b.tmpfs != nil {
		b.tmpfs.stop()
	}
	if b.parked != nil {
		b.parked.close()
	}
	if b.tmpfsDir != "" {
		os.RemoveAll(b.tmpfsDir)
		b.forgetTmpfs()
	}
}

// tmpfsRun is one closed-loop run against the reference inbox: ingest
// alone, as its app holds every delivery.
func (b *bench) tmpfsRun(run int) runFigures {
	return b.ingestAlone(b.tmpfs, nil, b.tmpfsURL, func() {
		if run == b.c.runs-1 {
			// Beside ingest-last.pprof: the same run of the same work, on disk.
			b.profileOf(b.tmpfs, "ingest-tmpfs.pprof", b.c.duration)
		}
	})
}
