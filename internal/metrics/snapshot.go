// Package metrics gives the web process a fleet-wide view for Prometheus and the dashboard. Everything is
// read on scrape: asynq's queues through the Inspector, and batchsynth's own numbers from MongoDB, the
// state of record. Nothing is counted in a worker's memory, so one scrape of any web replica sees the
// whole fleet, and the numbers survive restarts.
package metrics

import (
	"context"
	"sort"
	"sync"
	"time"

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
	f, err := s.Store.FleetProgress(ctx)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{At: now, Batches: map[string]int{}, OpenAIStatus: map[string]int{}}
	snap.Requests = make(map[string]int, len(f.Requests.States))
	for st, n := range f.Requests.States {
		snap.Requests[string(st)] = n
	}
	// Tokens and dollars are the requests' own, as status and the API report them: a request's usage and
	// cost are written when it settles, a batch's only at the end of its apply.
	for _, sp := range f.Requests.Spend {
		if sp.Immediate {
			snap.ImmediateUsage = snap.ImmediateUsage.Add(sp.Usage)
			snap.ImmediateUSD += sp.CostUSD
			continue
		}
		snap.BatchUsage = snap.BatchUsage.Add(sp.Usage)
		snap.BatchUSD += sp.CostUSD
		snap.BatchAtImmediateUSD += pricing.Immediate(sp.Model, sp.Usage)
	}

	var events []costEvent
	var oldestPoll time.Time
	for _, b := range f.Batches {
		snap.Batches[string(b.State)]++
		if b.State == store.BatchSubmitted {
			snap.OpenAIStatus[b.OpenAIStatus]++
			// A poll rewrites updated_at, so the oldest one among in-flight batches is the worst poll lag.
			if oldestPoll.IsZero() || b.UpdatedAt.Before(oldestPoll) {
				oldestPoll = b.UpdatedAt
			}
		}
		if b.SubmittedAt != nil && b.TerminalAt != nil {
			snap.TurnaroundSeconds = append(snap.TurnaroundSeconds, b.TerminalAt.Sub(*b.SubmittedAt).Seconds())
		}
		if b.AppliedAt != nil {
			if b.TerminalAt != nil {
				snap.ApplySeconds = append(snap.ApplySeconds, b.AppliedAt.Sub(*b.TerminalAt).Seconds())
			}
			// The chart places a batch's spend at its apply, from the usage the batch recorded then.
			events = append(events, costEvent{at: *b.AppliedAt, spent: pricing.Batch(b.Model, b.Usage), immediate: pricing.Immediate(b.Model, b.Usage)})
		}
	}
	if !oldestPoll.IsZero() {
		snap.PollLag = max(now.Sub(oldestPoll), 0)
	}
	for _, sp := range f.ImmediateSpend {
		if sp.CostUSD > 0 {
			events = append(events, costEvent{at: sp.At, spent: sp.CostUSD, immediate: sp.CostUSD})
		}
	}
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
