package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
)

// JobProgress is where a job stands.
type JobProgress struct {
	Job      *store.Job                 `json:"job"`
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

// Settled states: a request in one of them will not change again without a user action.
func isSettled(state store.RequestState) bool { return state.Settled() }

// FinishIfDone marks job jobID done, as Progress does, once all its requests are settled and its successes
// applied, and reports whether it is done. It first looks for one request still to do, which the (job_ids,
// state) index finds at once, so that the scheduler's sweep over running jobs costs one short query a job
// rather than Progress's counts over all of a job's requests.
func (d *Deps) FinishIfDone(ctx context.Context, jobID string) (bool, error) {
	err := d.Store.Requests.FindOne(ctx, bson.M{"job_ids": jobID, "$or": bson.A{
		bson.M{"state": bson.M{"$in": bson.A{store.StatePending, store.StateClaimed, store.StateSubmitted}}},
		bson.M{"state": store.StateSucceeded, "applied": false},
	}}, options.FindOne().SetProjection(bson.M{"_id": 1})).Err()
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return false, fmt.Errorf("error looking for unsettled requests of job %s: %w", jobID, err)
	}
	p, err := d.Progress(ctx, jobID)
	if err != nil {
		return false, err
	}
	return p.Finished, nil
}

// Progress computes a job's progress from its requests, and marks the job done once everything settled.
func (d *Deps) Progress(ctx context.Context, jobID string) (*JobProgress, error) {
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	filter := bson.M{"job_ids": jobID}
	states, err := d.Store.StateCounts(ctx, filter)
	if err != nil {
		return nil, err
	}
	p := &JobProgress{Job: job, States: states}
	for s, n := range states {
		p.Total += n
		if isSettled(s) {
			p.Settled += n
		}
	}
	p.Usage, p.CostUSD, err = d.Store.UsageSum(ctx, filter)
	if err != nil {
		return nil, err
	}
	p.ImmediateUSD = pricing.Immediate(job.Model, p.Usage)
	p.SavedUSD = p.ImmediateUSD - p.CostUSD
	if p.Batches, err = store.DistinctStrings(ctx, d.Store.Requests, "batch_id", filter); err != nil {
		return nil, err
	}
	sort.Strings(p.Batches)
	expanded := job.Status == store.JobRunning || job.Status == store.JobDone || job.Status == store.JobCancelled
	p.Finished = expanded && p.Settled == p.Total
	if p.Finished && p.States[store.StateSucceeded] > 0 {
		// A success is settled once its writes to Floridify's collections are done, not before.
		n, err := d.Store.Requests.CountDocuments(ctx, bson.M{"job_ids": jobID, "state": store.StateSucceeded, "applied": false})
		if err != nil {
			return nil, fmt.Errorf("error counting unapplied requests: %w", err)
		}
		p.Finished = n == 0
	}
	if p.Finished && job.Status == store.JobRunning {
		now := d.now()
		if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": store.JobRunning},
			bson.M{"$set": bson.M{"status": store.JobDone, "finished_at": now, "updated_at": now}}); err != nil {
			return nil, fmt.Errorf("error marking job %s done: %w", jobID, err)
		}
		job.Status = store.JobDone
		job.FinishedAt = &now
	}
	return p, nil
}

// RecentJobs lists the newest jobs.
func (d *Deps) RecentJobs(ctx context.Context, limit int64) ([]store.Job, error) {
	cur, err := d.Store.Jobs.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("error listing jobs: %w", err)
	}
	var out []store.Job
	return out, cur.All(ctx, &out)
}

// RecentBatches lists the newest batches.
func (d *Deps) RecentBatches(ctx context.Context, filter bson.M, limit int64) ([]store.Batch, error) {
	if filter == nil {
		filter = bson.M{}
	}
	cur, err := d.Store.Batches.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("error listing batches: %w", err)
	}
	var out []store.Batch
	return out, cur.All(ctx, &out)
}

// Totals sums every request's state, usage and cost: the fleet-wide view.
type Totals struct {
	States       map[store.RequestState]int `json:"states"`
	Batches      map[store.BatchState]int   `json:"batches"`
	Usage        store.Usage                `json:"usage"`
	CostUSD      float64                    `json:"cost_usd"`
	ImmediateUSD float64                    `json:"immediate_usd"`
}

// FleetTotals computes Totals.
func (d *Deps) FleetTotals(ctx context.Context) (*Totals, error) {
	t := &Totals{Batches: map[store.BatchState]int{}}
	var err error
	if t.States, err = d.Store.StateCounts(ctx, bson.M{}); err != nil {
		return nil, err
	}
	cur, err := d.Store.Batches.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.M{"_id": "$state", "n": bson.M{"$sum": 1},
			"imm": bson.M{"$sum": "$immediate_usd"}, "cost": bson.M{"$sum": "$cost_usd"}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("error counting batches: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var row struct {
			ID   store.BatchState `bson:"_id"`
			N    int              `bson:"n"`
			Imm  float64          `bson:"imm"`
			Cost float64          `bson:"cost"`
		}
		if err := cur.Decode(&row); err != nil {
			return nil, err
		}
		t.Batches[row.ID] = row.N
		t.ImmediateUSD += row.Imm
	}
	if t.Usage, t.CostUSD, err = d.Store.UsageSum(ctx, bson.M{}); err != nil {
		return nil, err
	}
	return t, nil
}
