package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The one progress read. A job, a batch and the fleet are each read with one query over their requests,
// tallied here by one function (tally), so that `status`, the API, the dashboard and /metrics give the same
// numbers for the same requests. Reads never write: only FinishJob, run by the scheduler's sweep, marks a
// job done.
//
// Sums are done client-side: FerretDB's $sum over embedded fields returned zeros, and its $group lacks $min.
// Dollar sums add the requests' costs in sorted order, so that two reads of the same requests give the same
// float whatever order the server returns them in (FerretDB's order varies from one query to the next).

// Progress is where a set of requests stands.
type Progress struct {
	States  map[RequestState]int `json:"states"`
	Total   int                  `json:"total"`
	Settled int                  `json:"settled"`
	// Unapplied counts successes not yet written to Floridify's collections.
	Unapplied int     `json:"unapplied"`
	Usage     Usage   `json:"usage"`
	CostUSD   float64 `json:"cost_usd"`
	// Spend splits Usage and CostUSD by model and path, for callers to price (internal/pricing imports store).
	Spend []Spend `json:"spend,omitempty"`
	// Batches are the ids of the batches the requests are in now, sorted.
	Batches []string `json:"batches"`
}

// Done reports whether every request is settled and every success applied.
func (p *Progress) Done() bool { return p.Settled == p.Total && p.Unapplied == 0 }

// Spend is the billed usage and cost of the requests of one model on one path (a batch or immediate calls).
type Spend struct {
	Model     string  `json:"model"`
	Immediate bool    `json:"immediate"`
	Usage     Usage   `json:"usage"`
	CostUSD   float64 `json:"cost_usd"`
}

// BatchSummary is what became of a batch's requests, derived from their states rather than counted at the
// end of apply, so that it is right after a crash mid-apply and names cancelled requests as cancelled.
type BatchSummary struct {
	Succeeded int `json:"succeeded"`
	// Retried counts requests this batch sent back to pending (an attempt error names the batch): now
	// pending, or in a later batch.
	Retried   int `json:"retried"`
	Dead      int `json:"dead"`
	Cancelled int `json:"cancelled"`
	// InFlight counts requests still claimed or submitted in the batch: not applied yet.
	InFlight int `json:"in_flight"`
}

// BatchProgress is where the requests of one batch stand.
type BatchProgress struct {
	Progress // of the requests in the batch now
	Summary  BatchSummary
}

// FleetProgress is the fleet-wide view: every request, and every batch document.
type FleetProgress struct {
	Requests    Progress
	BatchStates map[BatchState]int
	// Batches holds every batch document without its status history and errors (batches are few: each
	// carries up to 50,000 requests).
	Batches []Batch
	// ImmediateSpend is each immediate request's spend with when it settled: immediate requests are the
	// urgent and small submissions, few by design.
	ImmediateSpend []SpendAt
}

// SpendAt is one immediate request's billed usage and cost, and when it settled.
type SpendAt struct {
	At      time.Time
	Model   string
	Usage   Usage
	CostUSD float64
}

// progressRow is the part of a request the progress read needs.
type progressRow struct {
	State     RequestState `bson:"state"`
	Applied   bool         `bson:"applied"`
	BatchID   string       `bson:"batch_id"`
	Model     string       `bson:"model"`
	Immediate bool         `bson:"immediate"`
	Usage     Usage        `bson:"usage"`
	CostUSD   float64      `bson:"cost_usd"`
	SettledAt *time.Time   `bson:"settled_at"`
	UpdatedAt time.Time    `bson:"updated_at"`
	Errors    []struct {
		BatchID string `bson:"batch_id"`
	} `bson:"errors"`
}

var progressProjection = bson.M{"state": 1, "applied": 1, "batch_id": 1, "model": 1, "immediate": 1, "usage": 1, "cost_usd": 1}

type spendKey struct {
	model     string
	immediate bool
}

// tally adds up requests into a Progress.
type tally struct {
	p       Progress
	costs   []float64
	spend   map[spendKey]*Spend
	sCosts  map[spendKey][]float64
	batches map[string]bool
}

func newTally() *tally {
	return &tally{p: Progress{States: map[RequestState]int{}}, spend: map[spendKey]*Spend{},
		sCosts: map[spendKey][]float64{}, batches: map[string]bool{}}
}

func (t *tally) add(r *progressRow) {
	t.p.States[r.State]++
	t.p.Total++
	if r.State.Settled() {
		t.p.Settled++
	}
	if r.State == StateSucceeded && !r.Applied {
		t.p.Unapplied++
	}
	if r.BatchID != "" {
		t.batches[r.BatchID] = true
	}
	if r.Usage == (Usage{}) && r.CostUSD == 0 {
		return
	}
	t.p.Usage = t.p.Usage.Add(r.Usage)
	t.costs = append(t.costs, r.CostUSD)
	k := spendKey{r.Model, r.Immediate}
	sp := t.spend[k]
	if sp == nil {
		sp = &Spend{Model: r.Model, Immediate: r.Immediate}
		t.spend[k] = sp
	}
	sp.Usage = sp.Usage.Add(r.Usage)
	t.sCosts[k] = append(t.sCosts[k], r.CostUSD)
}

func (t *tally) progress() Progress {
	p := t.p
	p.CostUSD = sortedSum(t.costs)
	for k, sp := range t.spend {
		sp.CostUSD = sortedSum(t.sCosts[k])
		p.Spend = append(p.Spend, *sp)
	}
	slices.SortFunc(p.Spend, func(a, b Spend) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.Immediate), boolInt(b.Immediate))
	})
	p.Batches = make([]string, 0, len(t.batches))
	for id := range t.batches {
		p.Batches = append(p.Batches, id)
	}
	slices.Sort(p.Batches)
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedSum adds xs in ascending order: the same numbers give the same sum, whatever order they came in.
func sortedSum(xs []float64) float64 {
	slices.Sort(xs)
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// readRequests runs the one query of a progress read and hands each request to each.
func (s *Store) readRequests(ctx context.Context, filter bson.M, projection bson.M, each func(*progressRow)) error {
	cur, err := s.requests.Find(ctx, filter, options.Find().SetProjection(projection).SetBatchSize(5000))
	if err != nil {
		return fmt.Errorf("error reading request progress: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var r progressRow
		if err := cur.Decode(&r); err != nil {
			return fmt.Errorf("error reading request progress: %w", err)
		}
		each(&r)
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("error reading request progress: %w", err)
	}
	return nil
}

// JobProgress reads where the requests of job jobID stand, in one query.
func (s *Store) JobProgress(ctx context.Context, jobID string) (Progress, error) {
	t := newTally()
	if err := s.readRequests(ctx, bson.M{"job_ids": jobID}, progressProjection, t.add); err != nil {
		return Progress{}, err
	}
	return t.progress(), nil
}

// BatchesProgress reads where the requests of the batches ids stand, in one query: the requests in each
// batch now, and those an attempt in it sent back to pending (the only trace a retried request keeps of a
// batch is the batch id of its attempt error). Every id gets an entry, empty for a batch without requests.
func (s *Store) BatchesProgress(ctx context.Context, ids []string) (map[string]*BatchProgress, error) {
	out := make(map[string]*BatchProgress, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	tallies := make(map[string]*tally, len(ids))
	for _, id := range ids {
		tallies[id] = newTally()
		out[id] = &BatchProgress{}
	}
	retried := map[string]int{}
	// The whole errors array (a few short entries): FerretDB does not project a field inside an array.
	proj := bson.M{"errors": 1}
	for k, v := range progressProjection {
		proj[k] = v
	}
	filter := bson.M{"$or": bson.A{bson.M{"batch_id": bson.M{"$in": ids}}, bson.M{"errors.batch_id": bson.M{"$in": ids}}}}
	err := s.readRequests(ctx, filter, proj, func(r *progressRow) {
		if t := tallies[r.BatchID]; t != nil {
			t.add(r)
		}
		var seen []string
		for _, e := range r.Errors {
			if e.BatchID == r.BatchID || tallies[e.BatchID] == nil || slices.Contains(seen, e.BatchID) {
				continue
			}
			seen = append(seen, e.BatchID)
			retried[e.BatchID]++
		}
	})
	if err != nil {
		return nil, err
	}
	for id, t := range tallies {
		bp := out[id]
		bp.Progress = t.progress()
		st := bp.States
		bp.Summary = BatchSummary{Succeeded: st[StateSucceeded], Dead: st[StateDead], Cancelled: st[StateCancelled],
			InFlight: st[StateClaimed] + st[StateSubmitted], Retried: retried[id]}
	}
	return out, nil
}

// BatchProgress reads where the requests of batch id (ours) stand.
func (s *Store) BatchProgress(ctx context.Context, id string) (*BatchProgress, error) {
	m, err := s.BatchesProgress(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return m[id], nil
}

// FleetProgress reads where every request and every batch stands: one query over the requests, one over the
// batch documents.
func (s *Store) FleetProgress(ctx context.Context) (*FleetProgress, error) {
	f := &FleetProgress{BatchStates: map[BatchState]int{}}
	t := newTally()
	proj := bson.M{"settled_at": 1, "updated_at": 1}
	for k, v := range progressProjection {
		proj[k] = v
	}
	err := s.readRequests(ctx, bson.M{}, proj, func(r *progressRow) {
		t.add(r)
		if r.Immediate {
			at := r.UpdatedAt
			if r.SettledAt != nil {
				at = *r.SettledAt
			}
			f.ImmediateSpend = append(f.ImmediateSpend, SpendAt{At: at, Model: r.Model, Usage: r.Usage, CostUSD: r.CostUSD})
		}
	})
	if err != nil {
		return nil, err
	}
	f.Requests = t.progress()
	cur, err := s.batches.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"status_history": 0, "errors": 0}))
	if err != nil {
		return nil, fmt.Errorf("error reading batches: %w", err)
	}
	if err := cur.All(ctx, &f.Batches); err != nil {
		return nil, fmt.Errorf("error reading batches: %w", err)
	}
	// Sorted, so that two reads list (and sum) the batches alike.
	slices.SortFunc(f.Batches, func(a, b Batch) int { return strings.Compare(a.ID, b.ID) })
	for _, b := range f.Batches {
		f.BatchStates[b.State]++
	}
	return f, nil
}

// JobHasWorkLeft reports whether job jobID has a request still to do: in flight, or succeeded and not yet
// applied. It stops at the first one, which the (job_ids, state) index finds at once, so that the scheduler's
// sweep over running jobs costs one short query a job rather than a full progress read.
func (s *Store) JobHasWorkLeft(ctx context.Context, jobID string) (bool, error) {
	err := s.requests.FindOne(ctx, bson.M{"job_ids": jobID, "$or": bson.A{
		bson.M{"state": bson.M{"$in": bson.A{StatePending, StateClaimed, StateSubmitted}}},
		bson.M{"state": StateSucceeded, "applied": false},
	}}, options.FindOne().SetProjection(bson.M{"_id": 1})).Err()
	if err == nil {
		return true, nil
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	return false, fmt.Errorf("error looking for unsettled requests of job %s: %w", jobID, err)
}

// FinishJob marks running job jobID done at at, and reports whether it moved. The caller checks first that
// nothing is left to do (JobHasWorkLeft); the scheduler's sweep is the only caller.
func (s *Store) FinishJob(ctx context.Context, jobID string, at time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": jobMove(JobDone, JobRunning)},
		bson.M{"$set": bson.M{"status": JobDone, "finished_at": at, "updated_at": at}})
	if err != nil {
		return false, fmt.Errorf("error marking job %s done: %w", jobID, err)
	}
	return res.ModifiedCount > 0, nil
}
