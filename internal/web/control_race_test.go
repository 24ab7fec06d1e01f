package web

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// TestConcurrentRetryAndCancel: 8 retries and 8 cancels of one job sent at once through the API behave as if
// they ran one after another (each dead request requeued exactly once per retry that finds it, a cancel only
// between two retries), and once the fleet runs the job again, no request is sent twice or sits in two
// batches.
func TestConcurrentRetryAndCancel(t *testing.T) {
	e := newEnv(t, envOptions{Workers: 1, Emulator: emulator.Config{Seed: 7, Faults: emulator.Faults{RateRefusal: 0.4}},
		Tune: func(c *config.Config) { c.MaxAttempts = 1 }})
	bg := context.Background()
	d := e.Fleet.Deps
	sub := submission(t, sampleWords(t, 8)) // more words than the immediate path takes: through batches
	job, err := d.Submit(bg, sub)
	if err != nil {
		t.Fatal(err)
	}
	waitDone := func(status store.JobStatus) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			p, err := d.Progress(bg, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if p.Finished && p.Job.Status == status {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s not %s after 2 minutes: %s %v", job.ID, status, p.Job.Status, p.States)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitDone(store.JobDone)
	deadIDs := requestIDs(t, e, bson.M{"job_ids": job.ID, "state": store.StateDead})
	dead := len(deadIDs)
	if dead == 0 {
		t.Fatal("no request died; the test needs some to retry")
	}
	succeeded := requestIDs(t, e, bson.M{"job_ids": job.ID, "state": store.StateSucceeded})

	// Hold the model so that nothing is claimed during the storm: every retry and cancel then moves all of
	// the dead requests or none, which makes their counts exact.
	e.Emu.SetFaults(emulator.Faults{})
	if err := d.HoldModel(bg, sub.Model, time.Now().Add(time.Hour), "test: hold the storm's requests"); err != nil {
		t.Fatal(err)
	}
	before := len(e.Emu.Batches())

	type answer struct {
		retry  bool
		status int
		code   string
		n      int
	}
	answers := make(chan answer, 16)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		retry := i%2 == 0
		wg.Go(func() {
			<-start
			path := "/v1/jobs/" + job.ID + "/cancel"
			if retry {
				path = "/v1/jobs/" + job.ID + "/retry"
			}
			res := e.do(t, "POST", path, "", nil)
			var body struct {
				Requeued  int      `json:"requeued_requests"`
				Cancelled int      `json:"cancelled_requests"`
				Error     apiError `json:"error"`
			}
			decode(t, res, &body)
			answers <- answer{retry: retry, status: res.StatusCode, code: body.Error.Code, n: body.Requeued + body.Cancelled}
		})
	}
	close(start)
	wg.Wait()
	close(answers)

	retried, cancelled := 0, 0
	for a := range answers {
		switch {
		case a.retry && a.status == http.StatusOK && (a.n == 0 || a.n == dead):
			if a.n > 0 {
				retried++
			}
		case !a.retry && a.status == http.StatusOK && a.n == dead:
			cancelled++
		case !a.retry && a.status == http.StatusConflict && a.code == "job_finished":
		default:
			t.Errorf("answer %+v: want a retry of 0 or all %d dead requests, a cancel of all of them, or 409 job_finished", a, dead)
		}
	}
	// One after another, a cancel finds the job running only after a retry, and a retry finds requests to
	// requeue only first or after a cancel.
	if retried < 1 || retried < cancelled || retried > cancelled+1 {
		t.Fatalf("%d retries requeued the %d dead requests and %d cancels cancelled them: not a serial order", retried, dead, cancelled)
	}
	t.Logf("%d dead requests; %d retries requeued them, %d cancels cancelled them", dead, retried, cancelled)

	j, err := e.Fleet.Store.Job(bg, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, wantJob := store.StatePending, store.JobRunning
	if cancelled == retried {
		want, wantJob = store.StateCancelled, store.JobCancelled
	}
	if j.Status != wantJob {
		t.Errorf("job is %s after the storm, want %s", j.Status, wantJob)
	}
	if got := requestIDs(t, e, bson.M{"job_ids": job.ID, "state": want}); len(got) != dead {
		t.Errorf("%d requests %s after the storm, want the %d that were dead", len(got), want, dead)
	}
	if got := requestIDs(t, e, bson.M{"job_ids": job.ID, "state": store.StateSucceeded}); len(got) != len(succeeded) {
		t.Errorf("%d requests succeeded after the storm, %d before: a cancel or retry touched them", len(got), len(succeeded))
	}

	// Let the fleet run the requests: each is sent exactly once, in one batch.
	if err := d.HoldModel(bg, sub.Model, time.Now().Add(-time.Second), "test: released"); err != nil {
		t.Fatal(err)
	}
	if wantJob == store.JobCancelled {
		res := e.do(t, "POST", "/v1/jobs/"+job.ID+"/retry", "", nil)
		var body struct {
			Requeued int `json:"requeued_requests"`
		}
		decode(t, res, &body)
		if res.StatusCode != http.StatusOK || body.Requeued != dead {
			t.Fatalf("retry after the storm: %d, %d requeued; want 200 and %d", res.StatusCode, body.Requeued, dead)
		}
	}
	waitDone(store.JobDone)
	sent := map[string][]string{} // request id -> emulator batches that ran it
	for _, b := range e.Emu.Batches()[before:] {
		for _, l := range b.Lines {
			if l.Outcome == emulator.OutcomeExpired || l.Outcome == emulator.OutcomeCancelled {
				continue
			}
			id, _, err := synthesis.ParseCustomID(l.CustomID)
			if err != nil {
				t.Fatal(err)
			}
			sent[id] = append(sent[id], b.ID)
		}
	}
	for _, id := range deadIDs {
		if len(sent[id]) != 1 {
			t.Errorf("request %s was sent %d times after the retry (batches %v), want once", id, len(sent[id]), sent[id])
		}
	}
	if len(sent) != dead {
		t.Errorf("%d requests were sent after the storm, want the %d retried ones", len(sent), dead)
	}
	var reqs []store.Request
	cur, err := e.Fleet.Store.Collection(store.CollRequests).Find(bg, bson.M{"_id": bson.M{"$in": deadIDs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(bg, &reqs); err != nil {
		t.Fatal(err)
	}
	for _, q := range reqs {
		if q.State != store.StateSucceeded || q.Attempts > 1 {
			t.Errorf("request %s: %s after %d attempts, want succeeded at its first fresh attempt", q.ID, q.State, q.Attempts)
		}
	}
}

func requestIDs(t *testing.T, e *testEnv, filter bson.M) []string {
	t.Helper()
	cur, err := e.Fleet.Store.Collection(store.CollRequests).Find(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []store.Request
	if err := cur.All(context.Background(), &reqs); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(reqs))
	for i, q := range reqs {
		ids[i] = q.ID
	}
	return ids
}
