package pipeline

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// TestFinishIfDone: a running job is marked done once every request is settled (succeeded, dead or
// cancelled) and every success is applied, and not before.
func TestFinishIfDone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, st := b.ctx, b.d.Store
	job := newJob("job1", synthesis.ModePacked, []string{"cefr_level", "register"})
	b.expand(t, job, testWords)
	job.Status = store.JobRunning
	if _, err := st.Collection(store.CollJobs).InsertOne(ctx, job); err != nil {
		t.Fatal(err)
	}
	reqs := all[store.Request](t, ctx, st.Collection(store.CollRequests), bson.M{"job_ids": job.ID})
	if len(reqs) < 3 {
		t.Fatalf("%d requests, want at least 3", len(reqs))
	}
	check := func(step string, want bool) {
		t.Helper()
		done, err := b.d.FinishIfDone(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		j, err := st.Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done != want || (j.Status == store.JobDone) != want || (j.FinishedAt != nil) != want {
			t.Fatalf("%s: FinishIfDone %v, job %s (finished at %v); want done %v", step, done, j.Status, j.FinishedAt, want)
		}
	}
	set := func(id string, fields bson.M) {
		t.Helper()
		if _, err := st.Collection(store.CollRequests).UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": fields}); err != nil {
			t.Fatal(err)
		}
	}
	check("all pending", false)
	for _, r := range reqs[1:] {
		set(r.ID, bson.M{"state": store.StateSucceeded, "applied": true})
	}
	set(reqs[0].ID, bson.M{"state": store.StateSubmitted})
	check("one submitted", false)
	set(reqs[0].ID, bson.M{"state": store.StateSucceeded, "applied": false})
	check("one success not applied", false)
	set(reqs[0].ID, bson.M{"state": store.StateDead})
	set(reqs[1].ID, bson.M{"state": store.StateCancelled})
	check("settled: successes applied, one dead, one cancelled", true)
	check("again", true)
}

// TestOneProgressRead: the job view, the batch view and the fleet view (and the metrics built on it) are one
// read, so they agree; reading twice gives the same answer; reading never writes, so a settled job stays
// running in MongoDB until FinishIfDone; and a batch's summary comes from its requests' states (right before
// the batch document is marked applied, and naming cancelled requests as cancelled).
func TestOneProgressRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, st := b.ctx, b.d.Store
	job := newJob("job1", synthesis.ModePerComponent, []string{"cefr_level", "register"})
	b.expand(t, job, testWords)
	job.Status = store.JobRunning
	if _, err := st.Collection(store.CollJobs).InsertOne(ctx, job); err != nil {
		t.Fatal(err)
	}
	reqs := all[store.Request](t, ctx, st.Collection(store.CollRequests), bson.M{"job_ids": job.ID})
	if len(reqs) < 9 {
		t.Fatalf("%d requests, want at least 9", len(reqs))
	}
	// Batch sb_a was applied up to a crash: its requests are settled, its document still terminal with no
	// counts. sb_b is in flight.
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, bd := range []store.Batch{
		{ID: "sb_a", Model: "gpt-4o-mini", State: store.BatchTerminal, OpenAIStatus: "cancelled", CancelAsked: true, RequestCount: 6, StatusHistory: []store.StatusChange{}, CreatedAt: now},
		{ID: "sb_b", Model: "gpt-4o-mini", State: store.BatchSubmitted, OpenAIStatus: "in_progress", RequestCount: 1, StatusHistory: []store.StatusChange{}, CreatedAt: now.Add(time.Second)},
	} {
		if _, err := st.Collection(store.CollBatches).InsertOne(ctx, bd); err != nil {
			t.Fatal(err)
		}
	}
	set := func(id string, fields bson.M) {
		t.Helper()
		if _, err := st.Collection(store.CollRequests).UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": fields}); err != nil {
			t.Fatal(err)
		}
	}
	u := func(in, out int64) store.Usage { return store.Usage{InputTokens: in, OutputTokens: out} }
	failedIn := func(batch string) []store.AttemptError {
		return []store.AttemptError{{Attempt: 1, BatchID: batch, Reason: "test", At: now}}
	}
	for i := range 3 {
		set(reqs[i].ID, bson.M{"state": store.StateSucceeded, "applied": true, "batch_id": "sb_a", "usage": u(100, 10*int64(i+1)), "cost_usd": 0.1 * float64(i+1)})
	}
	set(reqs[3].ID, bson.M{"state": store.StateCancelled, "batch_id": "sb_a", "errors": failedIn("sb_a")})
	set(reqs[4].ID, bson.M{"state": store.StatePending, "errors": failedIn("sb_a"), "usage": u(90, 0), "cost_usd": 0.07})
	set(reqs[5].ID, bson.M{"state": store.StateDead, "batch_id": "sb_a", "errors": failedIn("sb_a"), "usage": u(80, 5), "cost_usd": 0.03})
	set(reqs[6].ID, bson.M{"state": store.StateSubmitted, "batch_id": "sb_b", "errors": failedIn("sb_a")})
	set(reqs[7].ID, bson.M{"state": store.StateSucceeded, "applied": false, "immediate": true, "usage": u(50, 20), "cost_usd": 0.011})
	// The rest stay pending.

	before, err := st.Job(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := func() (*JobProgress, *BatchStatus, *Totals) {
		t.Helper()
		p, err := b.d.Progress(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := b.d.BatchStatus(ctx, "sb_a")
		if err != nil {
			t.Fatal(err)
		}
		tot, err := b.d.FleetTotals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p, bs, tot
	}
	p, bs, tot := read()

	// The job view.
	// reqs[4] and the ones after reqs[7] are pending.
	wantStates := map[store.RequestState]int{store.StateSucceeded: 4, store.StateCancelled: 1, store.StatePending: len(reqs) - 7,
		store.StateDead: 1, store.StateSubmitted: 1}
	if !reflect.DeepEqual(p.States, wantStates) || p.Total != len(reqs) || p.Settled != 6 || p.Finished || p.Status != store.JobRunning {
		t.Errorf("job view: states %v total %d settled %d finished %v status %s; want %v, %d, 6, false, running",
			p.States, p.Total, p.Settled, p.Finished, p.Status, wantStates, len(reqs))
	}
	if !slices.Equal(p.Batches, []string{"sb_a", "sb_b"}) {
		t.Errorf("job view: batches %v", p.Batches)
	}
	wantUsage := store.Usage{InputTokens: 300 + 90 + 80 + 50, OutputTokens: 60 + 5 + 20}
	if p.Usage != wantUsage || math.Abs(p.CostUSD-0.711) > 1e-12 || math.Abs(p.SavedUSD-(p.ImmediateUSD-p.CostUSD)) > 1e-12 || p.ImmediateUSD <= 0 {
		t.Errorf("job view: usage %+v cost %v immediate %v saved %v; want %+v, 0.711", p.Usage, p.CostUSD, p.ImmediateUSD, p.SavedUSD, wantUsage)
	}

	// The batch view: derived from the requests, not from the document's counts (none were written).
	want := store.BatchSummary{Succeeded: 3, Retried: 2, Dead: 1, Cancelled: 1}
	if bs.Summary != want || bs.Applied != (store.ApplyCounts{}) {
		t.Errorf("batch view: summary %+v, want %+v (document counts %+v)", bs.Summary, want, bs.Applied)
	}
	bp, err := st.BatchProgress(ctx, "sb_a")
	if err != nil {
		t.Fatal(err)
	}
	if bp.Total != 5 || bp.States[store.StateSucceeded] != 3 || bp.Summary != want {
		t.Errorf("batch progress %+v", bp)
	}
	list, err := b.d.RecentBatches(ctx, store.BatchFilter{State: store.BatchTerminal}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "sb_a" || list[0].Summary != want {
		t.Errorf("recent terminal batches %+v", list)
	}
	if inb, err := st.BatchProgress(ctx, "sb_b"); err != nil || inb.Summary != (store.BatchSummary{InFlight: 1}) {
		t.Errorf("in-flight batch: %+v %v", inb, err)
	}

	// The fleet view (this database holds one job) and the metrics built on it.
	if !reflect.DeepEqual(tot.States, p.States) || tot.Usage != p.Usage || tot.CostUSD != p.CostUSD || tot.ImmediateUSD != p.ImmediateUSD {
		t.Errorf("fleet view %+v disagrees with the job view %+v", tot, p)
	}
	if !reflect.DeepEqual(tot.Batches, map[store.BatchState]int{store.BatchTerminal: 1, store.BatchSubmitted: 1}) {
		t.Errorf("fleet batches %v", tot.Batches)
	}
	snap, err := metrics.NewSource(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for s, n := range p.States {
		if snap.Requests[string(s)] != n {
			t.Errorf("metrics: %d %s requests, the job view %d", snap.Requests[string(s)], s, n)
		}
	}
	if math.Abs(snap.SpentUSD()-p.CostUSD) > 1e-12 || snap.BatchUsage.Add(snap.ImmediateUsage) != p.Usage {
		t.Errorf("metrics: spent %v usage %+v+%+v; the job view %v %+v", snap.SpentUSD(), snap.BatchUsage, snap.ImmediateUsage, p.CostUSD, p.Usage)
	}

	// Twice, the same answer; and no read wrote.
	p2, bs2, tot2 := read()
	if !reflect.DeepEqual(p, p2) || !reflect.DeepEqual(bs, bs2) || !reflect.DeepEqual(tot, tot2) {
		t.Errorf("a second read differs:\n%+v\n%+v\n%+v\n%+v", p, p2, tot, tot2)
	}
	unchanged := func(step string, status store.JobStatus) {
		t.Helper()
		j, err := st.Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != status || !j.UpdatedAt.Equal(before.UpdatedAt) || j.FinishedAt != nil {
			t.Errorf("%s: job %s updated %v finished %v; want %s, untouched", step, j.Status, j.UpdatedAt, j.FinishedAt, status)
		}
	}
	unchanged("after reading", store.JobRunning)

	// Everything settled and applied: Progress says finished, the document stays running until FinishIfDone.
	for _, r := range append(reqs[4:5], reqs[6:]...) {
		set(r.ID, bson.M{"state": store.StateSucceeded, "applied": true})
	}
	p, _, _ = read()
	if !p.Finished || p.Status != store.JobDone || p.Job.Status != store.JobRunning || p.Settled != p.Total {
		t.Errorf("settled: finished %v status %s (stored %s), %d/%d", p.Finished, p.Status, p.Job.Status, p.Settled, p.Total)
	}
	unchanged("settled, read", store.JobRunning)
	done, err := b.d.FinishIfDone(ctx, job.ID)
	if err != nil || !done {
		t.Fatalf("FinishIfDone: %v %v", done, err)
	}
	if j, err := st.Job(ctx, job.ID); err != nil || j.Status != store.JobDone || j.FinishedAt == nil {
		t.Errorf("after FinishIfDone: %+v %v", j, err)
	}
}
