package pipeline

import (
	"context"

	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
)

// JobProgress is where a job stands.
type JobProgress struct {
	Job *store.Job `json:"job"`
	// Status is the job's status as this read sees it: done once Finished, even before the scheduler's sweep
	// records it (reads never write).
	Status   store.JobStatus            `json:"status"`
	States   map[store.RequestState]int `json:"states"`
	Total    int                        `json:"total"`
	Settled  int                        `json:"settled"`
	Finished bool                       `json:"finished"`
	Batches  []string                   `json:"batches"`
	Usage    store.Usage                `json:"usage"`
	CostUSD  float64                    `json:"cost_usd"`
	// ImmediateUSD is what the same billed tokens cost at immediate (non-batch) prices.
	ImmediateUSD float64 `json:"immediate_usd"`
	SavedUSD     float64 `json:"saved_usd"`
}

// FinishIfDone marks job jobID done once all its requests are settled and its successes applied, and
// reports whether it is finished (done or cancelled). It is the only place a job is marked done: the
// scheduler's sweep runs it over running jobs. It first looks for one request still to do, so that the sweep
// costs one short query a job rather than a progress read of all of a job's requests.
func (d *Deps) FinishIfDone(ctx context.Context, jobID string) (bool, error) {
	left, err := d.Store.JobHasWorkLeft(ctx, jobID)
	if err != nil || left {
		return false, err
	}
	moved, err := d.Store.FinishJob(ctx, jobID, d.now())
	if err != nil {
		return false, err
	}
	if moved {
		// A retry may have put requests back between the look and the move, and seen the job still running
		// (so it did not reopen it): look again, and reopen a job that has work after all.
		if left, err := d.Store.JobHasWorkLeft(ctx, jobID); err != nil || !left {
			return err == nil, err
		}
		_, err := d.Store.ReopenJob(ctx, jobID, d.now())
		return false, err
	}
	// Not running: not expanded yet, finished already, or cancelled.
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return false, err
	}
	return job.Status.Finished(), nil
}

// Progress reads a job's progress from its requests. It only reads: FinishIfDone records a finished job.
func (d *Deps) Progress(ctx context.Context, jobID string) (*JobProgress, error) {
	// The job first: once it reads expanded, every one of its requests is written before the request read.
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	rp, err := d.Store.JobProgress(ctx, jobID)
	if err != nil {
		return nil, err
	}
	p := &JobProgress{Job: job, Status: job.Status, States: rp.States, Total: rp.Total, Settled: rp.Settled,
		Batches: rp.Batches, Usage: rp.Usage, CostUSD: rp.CostUSD, ImmediateUSD: immediateUSD(rp.Spend)}
	p.SavedUSD = p.ImmediateUSD - p.CostUSD
	// A success is settled once its writes to Floridify's collections are done, not before.
	p.Finished = job.Status.Expanded() && rp.Done()
	if p.Finished && job.Status == store.JobRunning {
		p.Status = store.JobDone
	}
	return p, nil
}

// immediateUSD prices spend at immediate (non-batch) prices, each model at its own.
func immediateUSD(spend []store.Spend) float64 {
	var usd float64
	for _, s := range spend {
		usd += pricing.Immediate(s.Model, s.Usage)
	}
	return usd
}

// RecentJobs lists the newest jobs.
func (d *Deps) RecentJobs(ctx context.Context, limit int64) ([]store.Job, error) {
	return d.Store.RecentJobs(ctx, store.JobFilter{}, limit)
}

// BatchStatus is a batch document with the summary of its requests, derived from their states.
type BatchStatus struct {
	*store.Batch
	// Summary stands where the batch document's own counts (written only at the end of apply) used to.
	Summary store.BatchSummary `json:"applied"`
}

// BatchStatus reads one batch (by our id or OpenAI's) and the summary of its requests.
func (d *Deps) BatchStatus(ctx context.Context, id string) (*BatchStatus, error) {
	b, err := d.Store.Batch(ctx, id)
	if err != nil {
		return nil, err
	}
	bp, err := d.Store.BatchProgress(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	return &BatchStatus{Batch: b, Summary: bp.Summary}, nil
}

// RecentBatches lists the newest batches under f, with the summaries of their requests.
func (d *Deps) RecentBatches(ctx context.Context, f store.BatchFilter, limit int64) ([]BatchStatus, error) {
	bs, err := d.Store.RecentBatches(ctx, f, limit)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(bs))
	for i := range bs {
		ids[i] = bs[i].ID
	}
	progress, err := d.Store.BatchesProgress(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]BatchStatus, len(bs))
	for i := range bs {
		out[i] = BatchStatus{Batch: &bs[i], Summary: progress[bs[i].ID].Summary}
	}
	return out, nil
}

// Totals sums every request's state, usage and cost: the fleet-wide view.
type Totals struct {
	States  map[store.RequestState]int `json:"states"`
	Batches map[store.BatchState]int   `json:"batches"`
	Usage   store.Usage                `json:"usage"`
	CostUSD float64                    `json:"cost_usd"`
	// ImmediateUSD is what the same billed tokens cost at immediate (non-batch) prices.
	ImmediateUSD float64 `json:"immediate_usd"`
}

// FleetTotals computes Totals.
func (d *Deps) FleetTotals(ctx context.Context) (*Totals, error) {
	f, err := d.Store.FleetProgress(ctx)
	if err != nil {
		return nil, err
	}
	r := f.Requests
	return &Totals{States: r.States, Batches: f.BatchStates, Usage: r.Usage, CostUSD: r.CostUSD, ImmediateUSD: immediateUSD(r.Spend)}, nil
}
