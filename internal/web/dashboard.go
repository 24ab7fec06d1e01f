package web

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
)

type metricsSnapshot = metrics.Snapshot

// The dashboard is server-rendered: the page carries the live section, and a few lines of script replace
// that section with a fresh rendering of it every refreshEvery, and post the cancel and retry buttons.
const (
	refreshEvery   = 2 * time.Second
	liveCacheFor   = time.Second // one rendering serves every open dashboard for this long
	dashboardJobs  = 25
	dashboardBatch = 25
)

// segment is one coloured run of a progress bar, drawn as an SVG rect (inline styles are barred by the CSP).
type segment struct {
	Class string
	X, W  float64 // percent of the bar
	Title string
}

type jobRow struct {
	store.Job
	States    map[store.RequestState]int
	Total     int
	Settled   int
	Pct       float64
	Display   store.JobStatus
	Segments  []segment
	CanCancel bool
	CanRetry  bool
}

type batchRow struct {
	store.Batch
	// Summary is what became of the batch's requests, from their states.
	Summary   store.BatchSummary
	Pct       float64
	CanCancel bool
}

type chart struct {
	Spent, Without, Saved string // SVG point lists
	MaxUSD                float64
	From, To              time.Time
	Empty                 bool
}

type pageData struct {
	Snap     *metrics.Snapshot
	Jobs     []jobRow
	Batches  []batchRow
	Chart    chart
	Now      time.Time
	Refresh  int // milliseconds
	Auth     bool
	Writable bool
}

// jobEntry is a job row's counts and status; a finished job's are kept while its document is unchanged.
type jobEntry struct {
	updated time.Time
	counts  map[store.RequestState]int
	status  store.JobStatus
}

// liveCache holds the last rendering data, and the request counts of finished jobs (they change only when
// the job's document does: a retry moves it back to running).
type liveCache struct {
	mu       sync.Mutex
	at       time.Time
	data     *pageData
	finished map[string]jobEntry
}

// changed drops the dashboard's and the totals' caches after an action, so the next refresh shows it.
func (s *Server) changed() {
	s.live.invalidate()
	if s.Metrics != nil {
		s.Metrics.Invalidate()
	}
}

func (c *liveCache) invalidate() {
	c.mu.Lock()
	c.data = nil
	c.mu.Unlock()
}

var templateFuncs = template.FuncMap{
	"money": func(v float64) string {
		if v != 0 && math.Abs(v) < 1 {
			return fmt.Sprintf("$%.4f", v)
		}
		return fmt.Sprintf("$%.2f", v)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"num": func(v any) string {
		s := fmt.Sprint(v)
		// Thousands separators make token counts readable.
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, r := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(r)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return t.Format("2006-01-02")
	},
	"clock": func(t time.Time) string { return t.UTC().Format("Jan 2 15:04") },
	"secs":  func(d time.Duration) string { return fmt.Sprintf("%.0fs", d.Seconds()) },
	"join":  strings.Join,
	// state looks k up in a job's counts by request state and in the snapshot's counts by name alike: the
	// page passes both.
	"state": func(m any, k string) int {
		switch m := m.(type) {
		case map[store.RequestState]int:
			return m[store.RequestState(k)]
		case map[string]int:
			return m[k]
		}
		return 0
	},
	"keys": func(m map[string]int) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	},
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.Log.Error("dashboard template failed", "template", name, "error", err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The dashboard loads nothing from elsewhere and runs only its own script.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.pageData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "index.html", d)
}

func (s *Server) liveFragment(w http.ResponseWriter, r *http.Request) {
	d, err := s.pageData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "live", d)
}

func (s *Server) pageData(ctx context.Context) (*pageData, error) {
	c := &s.live
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data != nil && time.Since(c.at) < liveCacheFor {
		return c.data, nil
	}
	if c.finished == nil {
		c.finished = map[string]jobEntry{}
	}
	snap, err := s.Metrics.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	jobs, err := s.Deps.Store.RecentJobs(ctx, store.JobFilter{Brief: true}, dashboardJobs)
	if err != nil {
		return nil, err
	}
	d := &pageData{Snap: snap, Now: time.Now().UTC(), Refresh: int(refreshEvery / time.Millisecond), Auth: s.Token != "", Writable: s.MonitoringWritable}
	for _, j := range jobs {
		e, err := c.jobProgress(ctx, s.Deps, j)
		if err != nil {
			return nil, err
		}
		d.Jobs = append(d.Jobs, newJobRow(j, e.counts, e.status))
	}
	batches, err := s.Deps.RecentBatches(ctx, store.BatchFilter{}, dashboardBatch)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		d.Batches = append(d.Batches, newBatchRow(b))
	}
	d.Chart = newChart(snap.Series)
	c.data, c.at = d, time.Now()
	return d, nil
}

// jobProgress reads a job's request counts and status as Progress sees them (done once finished, before the
// sweep records it), from the cache for a finished job whose document is unchanged.
func (c *liveCache) jobProgress(ctx context.Context, deps *pipeline.Deps, j store.Job) (jobEntry, error) {
	if e, ok := c.finished[j.ID]; ok && j.Status.Finished() && e.updated.Equal(j.UpdatedAt) {
		return e, nil
	}
	p, err := deps.Progress(ctx, j.ID)
	if err != nil {
		return jobEntry{}, err
	}
	e := jobEntry{updated: p.Job.UpdatedAt, counts: p.States, status: p.Status}
	if p.Job.Status.Finished() {
		if len(c.finished) > 10*dashboardJobs {
			clear(c.finished)
		}
		c.finished[j.ID] = e
	}
	return e, nil
}

// newJobRow is a job's row: its counts, and status as Progress gives it (done once finished).
func newJobRow(j store.Job, counts map[store.RequestState]int, status store.JobStatus) jobRow {
	row := jobRow{Job: j, States: counts, Display: status}
	for st, n := range counts {
		row.Total += n
		if st == store.StateSucceeded || st == store.StateDead || st == store.StateCancelled {
			row.Settled += n
		}
	}
	if row.Total > 0 {
		row.Pct = 100 * float64(row.Settled) / float64(row.Total)
		x := 0.0
		for _, sg := range []struct {
			class string
			state store.RequestState
			title string
		}{
			{"ok", store.StateSucceeded, "succeeded"},
			{"dead", store.StateDead, "dead"},
			{"cancelled", store.StateCancelled, "cancelled"},
			{"flight", store.StateSubmitted, "in a batch"},
			{"flight", store.StateClaimed, "being sent"},
		} {
			if n := counts[sg.state]; n > 0 {
				w := 100 * float64(n) / float64(row.Total)
				row.Segments = append(row.Segments, segment{Class: sg.class, X: x, W: w, Title: fmt.Sprintf("%d %s", n, sg.title)})
				x += w
			}
		}
	}
	if status == store.JobDone && row.Total == 0 {
		row.Pct = 100 // nothing was missing
	}
	active := !row.Display.Finished()
	row.CanCancel = active
	row.CanRetry = !active && j.Status != store.JobExpanding && counts[store.StateDead]+counts[store.StateCancelled] > 0
	return row
}

func newBatchRow(bs pipeline.BatchStatus) batchRow {
	b := *bs.Batch
	row := batchRow{Batch: b, Summary: bs.Summary, CanCancel: b.State == store.BatchSubmitted && !b.CancelAsked}
	switch {
	case b.State == store.BatchApplied || b.State == store.BatchAbandoned:
		row.Pct = 100
	case b.RequestCounts.Total > 0:
		row.Pct = 100 * float64(b.RequestCounts.Completed+b.RequestCounts.Failed) / float64(b.RequestCounts.Total)
	}
	return row
}

// Chart geometry (SVG user units).
const (
	chartW = 640.0
	chartH = 160.0
)

func newChart(pts []metrics.CostPoint) chart {
	if len(pts) == 0 {
		return chart{Empty: true}
	}
	// Cumulative lines rise from zero at the first event.
	pts = append([]metrics.CostPoint{{At: pts[0].At}}, pts...)
	c := chart{From: pts[0].At, To: pts[len(pts)-1].At}
	for _, p := range pts {
		c.MaxUSD = max(c.MaxUSD, p.WithoutBatchUSD, p.SpentUSD)
	}
	if c.MaxUSD == 0 {
		c.MaxUSD = 1
	}
	span := c.To.Sub(c.From).Seconds()
	x := func(i int, t time.Time) float64 {
		if span == 0 {
			// Every event at one instant: spread them evenly instead of stacking them on one x.
			return chartW * float64(i) / float64(len(pts)-1)
		}
		return chartW * t.Sub(c.From).Seconds() / span
	}
	y := func(v float64) float64 { return chartH - chartH*v/c.MaxUSD }
	spent := make([]string, len(pts))
	without := make([]string, len(pts))
	for i, p := range pts {
		spent[i] = fmt.Sprintf("%.1f,%.1f", x(i, p.At), y(p.SpentUSD))
		without[i] = fmt.Sprintf("%.1f,%.1f", x(i, p.At), y(p.WithoutBatchUSD))
	}
	c.Spent = strings.Join(spent, " ")
	c.Without = strings.Join(without, " ")
	// The saving is the band between the two lines: the without-batch line, then the spent line backwards.
	back := make([]string, len(spent))
	for i, p := range spent {
		back[len(spent)-1-i] = p
	}
	c.Saved = c.Without + " " + strings.Join(back, " ")
	return c
}

// SavedUSD is what the batch saved against immediate prices.
func (b batchRow) SavedUSD() float64 { return b.ImmediateUSD - b.CostUSD }
