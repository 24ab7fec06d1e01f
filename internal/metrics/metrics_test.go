package metrics

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSeries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []costEvent
	for i := range 1000 {
		// Out of order on purpose: series sorts.
		evs = append(evs, costEvent{at: t0.Add(time.Duration(999-i) * time.Minute), spent: 1, immediate: 2})
	}
	pts := series(evs)
	if len(pts) > maxSeries || len(pts) < maxSeries/2 {
		t.Fatalf("%d points", len(pts))
	}
	last := pts[len(pts)-1]
	if last.SpentUSD != 1000 || last.WithoutBatchUSD != 2000 || !last.At.Equal(t0.Add(999*time.Minute)) {
		t.Errorf("last point %+v, want the totals at the last event", last)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].At.Before(pts[i-1].At) || pts[i].SpentUSD < pts[i-1].SpentUSD {
			t.Fatalf("points not cumulative in time order at %d", i)
		}
	}
	if series(nil) != nil {
		t.Error("no event, no point")
	}
}

func TestSnapshotAndCollectors(t *testing.T) {
	ctx := context.Background()
	cl, db := testenv.Mongo(t)
	st := store.New(cl, db)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	u := store.Usage{InputTokens: 100_000, CachedTokens: 0, OutputTokens: 40_000}
	batches := []any{
		store.Batch{ID: "sb_1", Model: "gpt-4o-mini", State: store.BatchApplied, OpenAIStatus: "completed", Usage: u, StatusHistory: []store.StatusChange{},
			CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Minute), SubmittedAt: at(-50 * time.Minute), TerminalAt: at(-10 * time.Minute), AppliedAt: at(-9 * time.Minute)},
		store.Batch{ID: "sb_2", Model: "gpt-4o-mini", State: store.BatchSubmitted, OpenAIStatus: "in_progress", StatusHistory: []store.StatusChange{},
			CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-42 * time.Second), SubmittedAt: at(-time.Hour)},
		store.Batch{ID: "sb_3", Model: "gpt-4o-mini", State: store.BatchSubmitted, OpenAIStatus: "validating", StatusHistory: []store.StatusChange{},
			CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-2 * time.Second), SubmittedAt: at(-time.Minute)},
	}
	if _, err := st.Collection(store.CollBatches).InsertMany(ctx, batches); err != nil {
		t.Fatal(err)
	}
	iu := store.Usage{InputTokens: 1000, OutputTokens: 500}
	reqs := []any{
		// Tokens and dollars are read from the requests: r1's are the ones batch sb_1 recorded.
		map[string]any{"_id": "r1", "state": store.StateSucceeded, "applied": true, "batch_id": "sb_1", "model": "gpt-4o-mini", "usage": u, "cost_usd": pricing.Batch("gpt-4o-mini", u)},
		map[string]any{"_id": "r2", "state": store.StatePending},
		map[string]any{"_id": "r3", "state": store.StateSucceeded, "immediate": true, "model": "gpt-4o-mini", "usage": iu, "cost_usd": pricing.Immediate("gpt-4o-mini", iu), "settled_at": now, "updated_at": now},
	}
	if _, err := st.Collection(store.CollRequests).InsertMany(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	src := NewSource(st)
	src.Now = func() time.Time { return now }
	s, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests[string(store.StateSucceeded)] != 2 || s.Requests[string(store.StatePending)] != 1 {
		t.Errorf("requests %v", s.Requests)
	}
	if s.Batches[string(store.BatchSubmitted)] != 2 || s.Batches[string(store.BatchApplied)] != 1 || s.OpenAIStatus["in_progress"] != 1 || s.OpenAIStatus["validating"] != 1 {
		t.Errorf("batches %v, in flight %v", s.Batches, s.OpenAIStatus)
	}
	if s.PollLag != 42*time.Second {
		t.Errorf("poll lag %v, want 42s (the least recently polled in-flight batch)", s.PollLag)
	}
	if want := pricing.Batch("gpt-4o-mini", u); math.Abs(s.BatchUSD-want) > 1e-12 || s.SavedUSD() <= 0 || s.ImmediateUSD <= 0 {
		t.Errorf("batch $%v (want %v), saved $%v, immediate $%v", s.BatchUSD, want, s.SavedUSD(), s.ImmediateUSD)
	}
	if len(s.ApplySeconds) != 1 || s.ApplySeconds[0] != 60 || len(s.TurnaroundSeconds) != 1 || s.TurnaroundSeconds[0] != 2400 {
		t.Errorf("apply %v, turnaround %v", s.ApplySeconds, s.TurnaroundSeconds)
	}
	if len(s.Series) != 2 || math.Abs(s.Series[1].SpentUSD-s.SpentUSD()) > 1e-12 {
		t.Errorf("series %+v, want 2 points ending at the total spend %v", s.Series, s.SpentUSD())
	}
	// Cached: a change is not seen until the cache expires or is invalidated.
	if _, err := st.Collection(store.CollRequests).InsertOne(ctx, map[string]any{"_id": "r4", "state": store.StateDead}); err != nil {
		t.Fatal(err)
	}
	if s2, _ := src.Snapshot(ctx); s2 != s {
		t.Error("snapshot not cached")
	}
	src.Invalidate()
	if s2, _ := src.Snapshot(ctx); s2.Requests[string(store.StateDead)] != 1 {
		t.Error("invalidate did not drop the cache")
	}

	// The collectors, with asynq's queues read from a real redis-server.
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	qc := asynq.NewClient(opt)
	defer qc.Close()
	if _, err := qc.Enqueue(asynq.NewTask("poll-batch", []byte(`{}`)), asynq.Queue("poll")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	reg := prometheus.NewRegistry()
	if err := Register(reg, Options{Source: src, Inspector: insp}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		mf := byName[name]
		if mf == nil {
			return 0, false
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"batchsynth_store_up", nil, 1},
		{"batchsynth_requests", map[string]string{"state": "pending"}, 1},
		{"batchsynth_batches", map[string]string{"state": "submitted"}, 2},
		{"batchsynth_batches_inflight", map[string]string{"status": "in_progress"}, 1},
		{"batchsynth_tokens_total", map[string]string{"path": "batch", "kind": "output"}, 40_000},
		{"batchsynth_tokens_total", map[string]string{"path": "immediate", "kind": "input"}, 1000},
		{"batchsynth_poll_lag_seconds", nil, 42},
		{"batchsynth_apply_duration_seconds", nil, 1},
		{"batchsynth_batch_turnaround_seconds", nil, 1},
		{"asynq_up", nil, 1},
		{"asynq_queue_size", map[string]string{"queue": "poll"}, 1},
		{"asynq_tasks_enqueued_total", map[string]string{"queue": "poll", "state": "pending"}, 1},
	}
	for _, c := range checks {
		got, ok := value(c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if v, ok := value("batchsynth_saved_usd_total", nil); !ok || v <= 0 {
		t.Errorf("saved %v %v", v, ok)
	}
}
