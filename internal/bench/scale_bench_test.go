package bench

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

// scaleResult is one scale-out run.
type scaleResult struct {
	workers  int
	requests int
	batches  int
	wall     time.Duration
	timeline string
	// CPU time used during the run by the worker and scheduler processes, and by this process (the embedded
	// FerretDB behind its one-connection proxy, the emulator, and the submit-and-watch loop).
	childCPU, selfCPU time.Duration
}

// BenchmarkScaleOut runs the same job with 1, 2 and 4 worker processes (this test binary as `batchsynth
// worker`, BATCHSYNTH_CONCURRENCY at its default of 10 each) plus one scheduler process, against one
// redis-server and one MongoDB wire server (the test server: set BATCHSYNTH_TEST_FERRETDB_BACKEND=postgresql
// for FerretDB's PostgreSQL backend, or MONGODB_URI), with the emulator (instant, fault-free) in this
// process. Each run has a fresh Redis and database; the wall time is from Submit to the job finished. It
// reports the CPU time the fleet processes and this process (where the embedded FerretDB runs) used, logs a
// timeline (expansion, builds, applies from the job and batch documents) and, at the end, the throughput
// ratios. On FerretDB the workers use the proposed Store.MaxBulk (bench.FerretDBMaxBulk). Words: BATCHSYNTH_BENCH_WORDS (default 200; the figure is 5,000), split into
// batches of BATCHSYNTH_BENCH_MAX_LINES lines (default 2,000) so that applies can run side by side. Run it
// with -benchtime=1x.
func BenchmarkScaleOut(b *testing.B) {
	words := Words(b, envInt("BATCHSYNTH_BENCH_WORDS", 200))
	maxLines := envInt("BATCHSYNTH_BENCH_MAX_LINES", 2000)
	var results []scaleResult
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var r scaleResult
			for range b.N {
				b.StopTimer()
				r = scaleRun(b, words, workers, maxLines)
				b.StartTimer()
			}
			b.ReportMetric(r.wall.Seconds(), "wall-s")
			b.ReportMetric(float64(r.requests)/r.wall.Seconds(), "requests/s")
			b.ReportMetric(float64(r.batches), "batches")
			b.ReportMetric(r.childCPU.Seconds(), "fleet-cpu-s")
			b.ReportMetric(r.selfCPU.Seconds(), "ferretdb-process-cpu-s")
			b.Logf("%d worker processes: %d requests in %d batches, %s; CPU: fleet processes %s, FerretDB's process %s\n%s", workers, r.requests, r.batches,
				r.wall.Round(time.Millisecond), r.childCPU.Round(time.Millisecond), r.selfCPU.Round(time.Millisecond), r.timeline)
			results = append(results, r)
		})
	}
	if len(results) == 3 {
		base := results[0]
		var parts []string
		for _, r := range results {
			parts = append(parts, fmt.Sprintf("%d workers %s (x%.2f throughput)", r.workers, r.wall.Round(time.Millisecond),
				base.wall.Seconds()/r.wall.Seconds()))
		}
		b.Logf("scale-out, %d requests: %s", base.requests, strings.Join(parts, ", "))
	}
}

func scaleRun(b *testing.B, words []store.InputWord, workers, maxLines int) scaleResult {
	ctx := context.Background()
	redisURL := testenv.Redis(b)
	uri := testenv.MongoURI(b)
	_, db := testenv.Mongo(b)
	_, base := testenv.Emulator(b, emulator.Config{Seed: 1})
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	cfg.RedisURL, cfg.MongoURI, cfg.Database = redisURL, uri, db
	cfg.OpenAIKey, cfg.OpenAIBaseURL = "sk-bench", base
	cfg.PollInterval, cfg.SyncInterval, cfg.LeaseDuration = time.Second, time.Second, 3*time.Second
	cfg.MaxLines = maxLines
	// This process submits and watches; it runs no handler.
	f, err := fleet.Open(ctx, cfg, Logger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.Close)
	env := FleetEnv(cfg)
	children := []*Child{StartChild(b, RoleScheduler, env...)}
	for range workers {
		children = append(children, StartChild(b, RoleWorker, env...))
	}
	stats0 := testenv.MongoCommandStats()
	cpu0 := selfCPU()
	start := time.Now()
	job, err := f.Deps.Submit(ctx, pipeline.Submission{Source: "bench", Words: words, Components: Components, Mode: synthesis.ModePacked})
	if err != nil {
		b.Fatal(err)
	}
	p := waitJob(b, f.Deps, job.ID, 2*time.Hour)
	wall := time.Since(start)
	self := selfCPU() - cpu0
	var child time.Duration
	for _, c := range children {
		c.Stop()
		if ps := c.Cmd.ProcessState; ps != nil {
			child += ps.UserTime() + ps.SystemTime()
		}
	}
	return scaleResult{workers: workers, requests: p.Total, batches: len(p.Batches), wall: wall,
		timeline: timeline(b, f.Store, job.ID, start) + ServerTime(stats0, testenv.MongoCommandStats(), 15), childCPU: child, selfCPU: self}
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timeline reads when each phase happened, relative to start: the job's expansion (one enqueue-words task)
// and each batch's build (claimed to submitted), wait (submitted to terminal) and apply (terminal to applied).
func timeline(b *testing.B, st *store.Store, jobID string, start time.Time) string {
	ctx := context.Background()
	j, err := st.Job(ctx, jobID)
	if err != nil {
		b.Fatal(err)
	}
	cur, err := st.Collection(store.CollBatches).Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}}))
	if err != nil {
		b.Fatal(err)
	}
	var bs []store.Batch
	if err := cur.All(ctx, &bs); err != nil {
		b.Fatal(err)
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%6.1fs", t.Sub(start).Seconds())
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "  job: submitted %s, expanded %s\n", at(&j.CreatedAt), at(j.ExpandedAt))
	for _, bt := range bs {
		fmt.Fprintf(&sb, "  batch %s (%5d lines): claimed %s, submitted %s, terminal %s, applied %s (apply %s) by %s\n", bt.ID, bt.RequestCount,
			at(&bt.CreatedAt), at(bt.SubmittedAt), at(bt.TerminalAt), at(bt.AppliedAt), dur(bt.TerminalAt, bt.AppliedAt), bt.LeaseOwner)
	}
	return sb.String()
}

func dur(from, to *time.Time) string {
	if from == nil || to == nil {
		return "-"
	}
	return to.Sub(*from).Round(100 * time.Millisecond).String()
}
