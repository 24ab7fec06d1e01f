package web

import (
	"strings"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/store"
)

func TestNewChart(t *testing.T) {
	if !newChart(nil).Empty {
		t.Error("no point: empty chart")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newChart([]metrics.CostPoint{{At: t0, SpentUSD: 1, WithoutBatchUSD: 2}, {At: t0.Add(time.Hour), SpentUSD: 2, WithoutBatchUSD: 4}})
	if c.Spent != "0.0,160.0 0.0,120.0 640.0,80.0" || c.Without != "0.0,160.0 0.0,80.0 640.0,0.0" || c.MaxUSD != 4 {
		t.Errorf("chart %+v", c)
	}
	if !strings.HasPrefix(c.Saved, c.Without+" 640.0,80.0") {
		t.Errorf("band %q", c.Saved)
	}
	one := newChart([]metrics.CostPoint{{At: t0, SpentUSD: 1, WithoutBatchUSD: 2}})
	if one.Spent != "0.0,160.0 640.0,80.0" {
		t.Errorf("one point: %q", one.Spent)
	}
}

func TestNewJobRow(t *testing.T) {
	j := store.Job{ID: "job_1", Status: store.JobRunning}
	r := newJobRow(j, map[store.RequestState]int{store.StateSucceeded: 2, store.StateDead: 1, store.StateSubmitted: 1}, j.Status)
	if r.Total != 4 || r.Settled != 3 || r.Pct != 75 || !r.CanCancel || r.CanRetry || len(r.Segments) != 3 {
		t.Errorf("running row %+v", r)
	}
	if r.Segments[1].X != 50 || r.Segments[1].W != 25 || r.Segments[1].Class != "dead" {
		t.Errorf("segments %+v", r.Segments)
	}
	j.Status = store.JobDone
	r = newJobRow(j, map[store.RequestState]int{store.StateSucceeded: 2, store.StateDead: 1}, j.Status)
	if r.CanCancel || !r.CanRetry || r.Display != store.JobDone {
		t.Errorf("done row %+v", r)
	}
	// A running job that Progress finds finished shows done before the sweep records it.
	j.Status = store.JobRunning
	r = newJobRow(j, map[store.RequestState]int{store.StateSucceeded: 3}, store.JobDone)
	if r.CanCancel || r.CanRetry || r.Display != store.JobDone || r.Pct != 100 {
		t.Errorf("finished running row %+v", r)
	}
}
