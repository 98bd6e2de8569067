package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The harness starts servers (Caddy, nats-server) that must not outlive it,
// whichever way it ends: a normal return stops them through defers; an
// interrupt or SIGTERM runs the onExit hooks before exiting; and if the
// harness dies without either (SIGKILL), the kernel kills its children
// (dieWithHarness).

var exitHooks struct {
	sync.Mutex
	next  int
	hooks map[int]func()
}

// onExit registers f to run if the harness is interrupted; the returned
// function unregisters it, once what f stops has been stopped normally.
func onExit(f func()) (forget func()) {
	exitHooks.Lock()
	defer exitHooks.Unlock()
	if exitHooks.hooks == nil {
		exitHooks.hooks = map[int]func(){}
	}
	id := exitHooks.next
	exitHooks.next++
	exitHooks.hooks[id] = f
	return func() {
		exitHooks.Lock()
		defer exitHooks.Unlock()
		delete(exitHooks.hooks, id)
	}
}

// exitOnSignal runs the onExit hooks and exits when the harness is
// interrupted or terminated.
func exitOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		runExitHooks()
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
}

// runExitHooks runs every hook registered and not forgotten, the last
// registered first, as defers run: processes before the directory they
// write in.
func runExitHooks() {
	exitHooks.Lock()
	hooks, last := exitHooks.hooks, exitHooks.next
	exitHooks.hooks = nil
	exitHooks.Unlock()
	for id := last; id >= 0; id-- {
		if f, ok := hooks[id]; ok {
			f()
		}
	}
}

// dieWithHarness makes a child process receive SIGKILL when the harness
// dies, however it dies.
func dieWithHarness() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
