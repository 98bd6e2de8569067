package store

import (
	"fmt"
	"sync"
)

// Step names a step of the store's writes that [Faults] can make fail.
type Step string

// The steps a store's write goes through, in order. A failure of
// StepJournalWrite, StepCheckpoint or StepRecord fails that write and the
// store goes on; a failure of StepSync or StepApply fails the store: it
// refuses writes until it is opened again, as after a real failed fsync.
const (
	// StepJournalWrite: writing a commit's record to the journal (a full
	// disk, a file that cannot be created).
	StepJournalWrite Step = "journal_write"
	// StepSync: the fdatasync of a commit's record.
	StepSync Step = "sync"
	// StepApply: Badger applying a commit whose record is synced.
	StepApply Step = "apply"
	// StepCheckpoint: writing a checkpoint (a file that cannot be created:
	// a read-only or full directory).
	StepCheckpoint Step = "checkpoint"
	// StepRecord: storing one delivery attempt's record.
	StepRecord Step = "record"
)

// Faults makes steps of a store's writes fail on demand, so that tests of
// the whole server can check what the app receives and what the sender
// gets while the disk fails. A nil *Faults fails nothing. Its methods are
// safe for concurrent use.
type Faults struct {
	mu      sync.Mutex
	failing map[Step]error
}

// Fail makes every later pass through step fail with err, until Heal.
func (f *Faults) Fail(step Step, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing == nil {
		f.failing = make(map[Step]error)
	}
	f.failing[step] = err
}

// Heal makes step work again. A store failed by StepSync or StepApply stays
// failed until it is opened again.
func (f *Faults) Heal(step Step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.failing, step)
}

// check returns the error step must fail with, or nil.
func (f *Faults) check(step Step) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing[step]; err != nil {
		return fmt.Errorf("%s (injected): %w", step, err)
	}
	return nil
}
