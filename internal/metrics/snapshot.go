// Package metrics gives the web process a fleet-wide view for Prometheus and the dashboard. Everything is
// read on scrape: asynq's queues through the Inspector, and batchsynth's own numbers from MongoDB, the
// state of record. Nothing is counted in a worker's memory, so one scrape of any web replica sees the
// whole fleet, and the numbers survive restarts.
package metrics

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
)

// CacheForDefault is how long one MongoDB read serves scrapes and dashboard refreshes: several Prometheus
// servers and open dashboards then cost one set of queries per interval, not one each.
const CacheForDefault = 5 * time.Second

// Snapshot is the fleet-wide picture at one moment.
type Snapshot struct {
	At time.Time `json:"at"`
	// Requests counts synthesis_requests by state.
	Requests map[string]int `json:"requests"`
	// Batches counts synthesis_batches by our state; OpenAIStatus counts the in-flight ones by OpenAI's status.
	Batches      map[string]int `json:"batches"`
	OpenAIStatus map[string]int `json:"openai_status"`
	// BatchUsage and ImmediateUsage are billed tokens by path.
	BatchUsage     store.Usage `json:"batch_usage"`
	ImmediateUsage store.Usage `json:"immediate_usage"`
	// BatchUSD is spent at batch prices; BatchAtImmediateUSD is what the same tokens would have cost without
	// the Batch API; ImmediateUSD is spent on immediate (urgent, small) requests.
	BatchUSD            float64 `json:"batch_usd"`
	BatchAtImmediateUSD float64 `json:"batch_at_immediate_usd"`
	ImmediateUSD        float64 `json:"immediate_usd"`
	// PollLag is how long ago the least recently polled in-flight batch was polled (0 with none in flight).
	PollLag time.Duration `json:"-"`
	// ApplySeconds holds, per applied batch, the time from OpenAI's terminal status being seen to the batch
	// being applied; TurnaroundSeconds the time from submission to terminal status.
	ApplySeconds      []float64 `json:"-"`
	TurnaroundSeconds []float64 `json:"-"`
	// Series is cumulative spend over time, oldest first, for the dashboard's chart.
	Series []CostPoint `json:"series"`
}

// SpentUSD is every dollar recorded, both paths.
func (s *Snapshot) SpentUSD() float64 { return s.BatchUSD + s.ImmediateUSD }

// SavedUSD is what the Batch API saved against immediate prices.
func (s *Snapshot) SavedUSD() float64 { return s.BatchAtImmediateUSD - s.BatchUSD }

// CostPoint is cumulative spend at one time. WithoutBatchUSD is what the same work would have cost at
// immediate prices: the gap between the two lines is the saving.
type CostPoint struct {
	At              time.Time `json:"at"`
	SpentUSD        float64   `json:"spent_usd"`
	WithoutBatchUSD float64   `json:"without_batch_usd"`
}

// maxSeries bounds the chart's points; older events are folded into the first point.
const maxSeries = 400

// Source reads Snapshots from MongoDB, caching one for CacheFor.
type Source struct {
	Store    *store.Store
	CacheFor time.Duration
	Now      func() time.Time

	mu   sync.Mutex
	last *Snapshot
}

// NewSource returns a Source over st with the default cache.
func NewSource(st *store.Store) *Source { return &Source{Store: st, CacheFor: CacheForDefault} }

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Snapshot returns the cached snapshot, or reads a new one once the cache is stale. Concurrent callers wait
// for one read instead of each querying MongoDB.
func (s *Source) Snapshot(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ttl := s.CacheFor
	if ttl == 0 {
		ttl = CacheForDefault
	}
	if s.last != nil && s.now().Sub(s.last.At) < ttl {
		return s.last, nil
	}
	snap, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	s.last = snap
	return snap, nil
}

// Invalidate drops the cache, so that the next read sees a change the caller just made.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.last = nil
	s.mu.Unlock()
}

type costEvent struct {
	at        time.Time
	spent     float64
	immediate float64
}

func (s *Source) read(ctx context.Context) (*Snapshot, error) {
	now := s.now()
	snap := &Snapshot{At: now, Batches: map[string]int{}, OpenAIStatus: map[string]int{}}
	var err error
	counts, err := s.Store.StateCounts(ctx, bson.M{})
	if err != nil {
		return nil, err
	}
	snap.Requests = make(map[string]int, len(counts))
	for st, n := range counts {
		snap.Requests[string(st)] = n
	}
	var events []costEvent

	// Batches are few (each carries up to 50,000 requests), so reading all of them is cheap; usage is summed
	// here rather than with $sum, which FerretDB answers with zeros for embedded fields.
	cur, err := s.Store.Batches.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{
		"state": 1, "openai_status": 1, "model": 1, "usage": 1, "updated_at": 1, "submitted_at": 1,
		"terminal_at": 1, "applied_at": 1,
	}))
	if err != nil {
		return nil, fmt.Errorf("error reading batches for metrics: %w", err)
	}
	var oldestPoll time.Time
	for cur.Next(ctx) {
		var b store.Batch
		if err := cur.Decode(&b); err != nil {
			_ = cur.Close(ctx)
			return nil, fmt.Errorf("error decoding batch for metrics: %w", err)
		}
		snap.Batches[string(b.State)]++
		if b.State == store.BatchSubmitted {
			snap.OpenAIStatus[b.OpenAIStatus]++
			// A poll rewrites updated_at, so the oldest one among in-flight batches is the worst poll lag.
			if oldestPoll.IsZero() || b.UpdatedAt.Before(oldestPoll) {
				oldestPoll = b.UpdatedAt
			}
		}
		snap.BatchUsage = snap.BatchUsage.Add(b.Usage)
		spent, imm := pricing.Batch(b.Model, b.Usage), pricing.Immediate(b.Model, b.Usage)
		snap.BatchUSD += spent
		snap.BatchAtImmediateUSD += imm
		if b.SubmittedAt != nil && b.TerminalAt != nil {
			snap.TurnaroundSeconds = append(snap.TurnaroundSeconds, b.TerminalAt.Sub(*b.SubmittedAt).Seconds())
		}
		if b.AppliedAt != nil {
			if b.TerminalAt != nil {
				snap.ApplySeconds = append(snap.ApplySeconds, b.AppliedAt.Sub(*b.TerminalAt).Seconds())
			}
			events = append(events, costEvent{at: *b.AppliedAt, spent: spent, immediate: imm})
		}
	}
	if err := cur.Err(); err != nil {
		_ = cur.Close(ctx)
		return nil, fmt.Errorf("error reading batches for metrics: %w", err)
	}
	_ = cur.Close(ctx)
	if !oldestPoll.IsZero() {
		snap.PollLag = max(now.Sub(oldestPoll), 0)
	}

	// Immediate requests are the urgent and small submissions: few by design.
	cur, err = s.Store.Requests.Find(ctx, bson.M{"immediate": true}, options.Find().SetProjection(bson.M{
		"usage": 1, "cost_usd": 1, "settled_at": 1, "updated_at": 1,
	}))
	if err != nil {
		return nil, fmt.Errorf("error reading immediate requests for metrics: %w", err)
	}
	for cur.Next(ctx) {
		var r store.Request
		if err := cur.Decode(&r); err != nil {
			_ = cur.Close(ctx)
			return nil, fmt.Errorf("error decoding request for metrics: %w", err)
		}
		snap.ImmediateUsage = snap.ImmediateUsage.Add(r.Usage)
		snap.ImmediateUSD += r.CostUSD
		at := r.UpdatedAt
		if r.SettledAt != nil {
			at = *r.SettledAt
		}
		if r.CostUSD > 0 {
			events = append(events, costEvent{at: at, spent: r.CostUSD, immediate: r.CostUSD})
		}
	}
	if err := cur.Err(); err != nil {
		_ = cur.Close(ctx)
		return nil, fmt.Errorf("error reading immediate requests for metrics: %w", err)
	}
	_ = cur.Close(ctx)
	snap.Series = series(events)
	return snap, nil
}

// series turns cost events into cumulative points, at most maxSeries of them.
func series(events []costEvent) []CostPoint {
	if len(events) == 0 {
		return nil
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	out := make([]CostPoint, 0, min(len(events), maxSeries))
	var spent, imm float64
	// Events are folded into evenly many groups so that the last point is always the current total.
	per := (len(events) + maxSeries - 1) / maxSeries
	for i, e := range events {
		spent += e.spent
		imm += e.immediate
		if (i+1)%per == 0 || i == len(events)-1 {
			out = append(out, CostPoint{At: e.at, SpentUSD: spent, WithoutBatchUSD: imm})
		}
	}
	return out
}
