package caddymodule

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// replayJobs are the dashboard's bulk replays. They belong to the process,
// not to a config: the admin endpoint and the sites' handlers are replaced
// at every reload, and a replay in progress goes on and stays visible.
var replayJobs = &jobList{}

// keptJobs is how many finished replays stay visible.
const keptJobs = 20

type jobList struct {
	mu   sync.Mutex
	last int
	jobs []*replayJob
}

// replayJob replays a fixed list of events, one at a time: the list was
// read when the user confirmed, so events that the replay itself makes
// pending are not replayed twice, and the whole filter is replayed, not
// the page on screen.
type replayJob struct {
	mu sync.Mutex
	st jobStatus
}

// jobStatus is a replay's progress, as its page shows it.
type jobStatus struct {
	ID       string
	Filter   eventFilter
	Started  time.Time
	Finished time.Time
	Total    int
	Replayed int
	// Gone: deleted or removed by retention since the list was read.
	Gone   int
	Failed int
	Error  string
	Done   bool
}

func (l *jobList) start(app *App, db store.Store, f eventFilter, ids []replayTarget) jobStatus {
	l.mu.Lock()
	l.last++
	job := &replayJob{st: jobStatus{ID: strconv.Itoa(l.last), Filter: f, Started: time.Now(), Total: len(ids)}}
	l.jobs = append(l.jobs, job)
	l.prune()
	l.mu.Unlock()
	go job.run(app, db, ids)
	return job.status()
}

// prune forgets the oldest finished replays beyond keptJobs. l.mu is held.
func (l *jobList) prune() {
	for len(l.jobs) > keptJobs {
		i := -1
		for j, job := range l.jobs {
			if job.status().Done {
				i = j
				break
			}
		}
		if i < 0 {
			return
		}
		l.jobs = append(l.jobs[:i], l.jobs[i+1:]...)
	}
}

func (l *jobList) get(id string) (*replayJob, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, job := range l.jobs {
		if job.st.ID == id {
			return job, true
		}
	}
	return nil, false
}

func (j *replayJob) status() jobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st
}

func (j *replayJob) run(app *App, db store.Store, ids []replayTarget) {
	inboxes := map[string]bool{}
	for _, t := range ids {
		err := db.Replay(t.ID, time.Now())
		j.mu.Lock()
		switch {
		case err == nil:
			j.st.Replayed++
		case errors.Is(err, store.ErrNotFound):
			j.st.Gone++
		default:
			j.st.Failed++
			j.st.Error = err.Error()
		}
		j.mu.Unlock()
		if err == nil && !inboxes[t.Inbox] {
			// The breaker of an app known to be down holds the replayed
			// events back: a user replays once the app is fixed.
			inboxes[t.Inbox] = true
			app.engine.probe(t.Inbox)
		}
	}
	j.mu.Lock()
	j.st.Done, j.st.Finished = true, time.Now()
	j.mu.Unlock()
}

// Percent is how far the replay has gone.
func (s jobStatus) Percent() int {
	if s.Total == 0 {
		return 100
	}
	return (s.Replayed + s.Gone + s.Failed) * 100 / s.Total
}
