package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testfleet"
	"github.com/floridify/batchsynth/tasks"
)

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// waitJob waits until the job is finished and every request succeeded.
func waitJob(tb testing.TB, d *pipeline.Deps, jobID string, timeout time.Duration) *pipeline.JobProgress {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	// FinishIfDone, as the scheduler's sweep runs it, but every half second: it stops at the job's first
	// unsettled request, where Progress counts all of them, and polling Progress would add its load (on
	// FerretDB, several scans of the collection each time) to what the benchmarks measure.
	for {
		done, err := d.FinishIfDone(context.Background(), jobID)
		if err != nil {
			tb.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			p, _ := d.Progress(context.Background(), jobID)
			tb.Fatalf("job %s not finished after %s: progress %+v", jobID, timeout, p)
		}
		time.Sleep(500 * time.Millisecond)
	}
	p, err := d.Progress(context.Background(), jobID)
	if err != nil {
		tb.Fatal(err)
	}
	if !p.Finished || p.States[store.StateSucceeded] != p.Total || p.Total == 0 {
		tb.Fatalf("job %s finished with states %v", jobID, p.States)
	}
	return p
}

// BenchmarkQueueTraffic runs a job on a real in-test fleet (two worker servers and the scheduler, wired by
// internal/fleet; redis-server, the MongoDB wire server, the emulator over HTTP) and counts what it cost:
// asynq tasks by queue (asynq's statistics) and OpenAI calls by route (the emulator's counters). Targets
// (issue 6): at most one task per 500 requests plus the polls, and at most 3 OpenAI calls per batch plus the
// polls (upload, create, output download; an error file adds its download). A job of this size needs a
// fixed few tasks (one enqueue-words, a build, an apply per batch), so the per-500 bound is checked as
// max(1 per 500 requests, enqueue + build + apply per batch). The sweeps and flush run at their production
// defaults (15 s, 30 s); polls every second. 40 words (about 190 requests) here; the 5,000 words by
// hand: BATCHSYNTH_BENCH_WORDS=5000 BATCHSYNTH_TEST_FERRETDB_BACKEND=postgresql (docs/benchmarks.md).
//
// It is a benchmark, not a test, because it runs minutes (the sweeps at their production pace): the default
// `go test ./...` leaves it out, and .ci/run runs it once (-bench=QueueTraffic -benchtime=1x). A target
// missed fails it like a test.
func BenchmarkQueueTraffic(b *testing.B) {
	for range b.N {
		queueTraffic(b)
	}
}

func queueTraffic(t testing.TB) {
	words := envInt("BATCHSYNTH_BENCH_WORDS", 40)
	maxLines := envInt("BATCHSYNTH_BENCH_MAX_LINES", config.MaxLinesDefault)
	f := testfleet.Start(t, testfleet.Options{Workers: 2, Tune: func(c *config.Config) {
		c.FlushDelay, c.SweepInterval = config.FlushDelayDefault, config.SweepIntervalDefault
		c.MaxLines = maxLines
	}})
	ctx := context.Background()
	start := time.Now()
	job, err := f.Deps.Submit(ctx, pipeline.Submission{Source: "bench", Words: Words(t, words), Components: Components, Mode: synthesis.ModePacked})
	if err != nil {
		t.Fatal(err)
	}
	p := waitJob(t, f.Deps, job.ID, 60*time.Minute)
	elapsed := time.Since(start)
	if err := WaitQueuesIdle(f.Redis, len(p.Batches), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tr, err := MeasureTraffic(ctx, f.Redis, f.Emulator, f.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d words, %d requests, %s: %s", words, p.Total, elapsed.Round(time.Millisecond), tr)
	per500 := (p.Total + 499) / 500
	fixed := 2 + tr.Batches // one enqueue-words, one build, one apply per batch
	if got := tr.NonPollTasks(); got > max(per500, fixed) {
		t.Errorf("%d tasks besides polls for %d requests in %d batches, want at most max(%d per 500 requests, %d)", got, p.Total, tr.Batches, per500, fixed)
	}
	t.Logf("tasks besides polls: %d (%.2f per 500 requests); polls: %d tasks", tr.NonPollTasks(),
		float64(tr.NonPollTasks())*500/float64(p.Total), tr.Tasks[tasks.QueuePoll])
	if got, want := tr.NonPollCalls(), int64(3*tr.Batches+tr.ErrorFiles); got > want {
		t.Errorf("%d OpenAI calls besides polls for %d batches, want at most %d", got, tr.Batches, want)
	}
	t.Logf("OpenAI calls besides polls: %d (%.2f per batch); polls: %d calls", tr.NonPollCalls(),
		float64(tr.NonPollCalls())/float64(tr.Batches), tr.Calls[RoutePoll])
}
