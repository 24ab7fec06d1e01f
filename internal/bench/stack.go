package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/devstack"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
)

// StackOptions shape a Stack; the zero value is the configuration defaults on a fault-free, instant emulator.
type StackOptions struct {
	Tune     func(*config.Config)
	Emulator emulator.Config
	// MaxBulk overrides Store.MaxBulk after the server is detected (FerretDB: 50); 0 keeps it.
	MaxBulk int
}

// Stack is one process's pipeline (pipeline.Deps, as internal/fleet wires it) on real services: a
// redis-server of its own, a database of its own on the test MongoDB wire server (embedded FerretDB unless
// MONGODB_URI is set), and the Batch API emulator over HTTP. Its MongoDB client counts every command.
type Stack struct {
	Deps     *pipeline.Deps
	Store    *store.Store
	Emulator *emulator.Server
	Commands *Commands
	Redis    redis.UniversalClient
	RedisURL string
	Config   config.Config
}

// NewStack starts the services and wires the pipeline; everything stops when tb ends.
func NewStack(tb testing.TB, o StackOptions) *Stack {
	tb.Helper()
	ctx := context.Background()
	redisURL := testenv.Redis(tb)
	uri := testenv.MongoURI(tb)
	_, db := testenv.Mongo(tb) // a database of this test's own, dropped at its end
	emu, base := testenv.Emulator(tb, o.Emulator)
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		tb.Fatalf("bench: default config: %v", err)
	}
	cfg.RedisURL, cfg.MongoURI, cfg.Database = redisURL, uri, db
	cfg.OpenAIKey, cfg.OpenAIBaseURL = "sk-bench", base
	cfg.PollInterval, cfg.FlushDelay = time.Second, time.Second
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	cmds := &Commands{}
	mc, err := store.Connect(ctx, uri, options.Client().SetMonitor(cmds.Monitor()))
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	st := store.New(mc, db)
	if err := st.EnsureIndexes(ctx); err != nil {
		tb.Fatalf("bench: %v", err)
	}
	if o.MaxBulk > 0 {
		st.MaxBulk = o.MaxBulk
	} else if st.FerretDB {
		st.MaxBulk = FerretDBMaxBulk()
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	rc := opt.MakeRedisClient().(redis.UniversalClient)
	queue := asynq.NewClientFromRedisClient(rc)
	tb.Cleanup(func() {
		_ = queue.Close()
		_ = mc.Disconnect(context.Background())
	})
	s := &Stack{
		Store: st, Emulator: emu, Commands: cmds, Redis: rc, RedisURL: redisURL, Config: cfg,
		Deps: &pipeline.Deps{
			Store:  st,
			OpenAI: openaibatch.New(openaibatch.Options{APIKey: cfg.OpenAIKey, BaseURL: base, MaxRetries: 3, Timeout: 10 * time.Minute}),
			Queue:  queue, Redis: rc, Config: cfg, Log: Logger(), Owner: "bench",
		},
	}
	cmds.Take() // index creation is not part of any step
	return s
}

// FerretDBPostgresMaxBulk is Store.MaxBulk on FerretDB v1.24 with its PostgreSQL backend. That backend
// holds a connection per update statement until the command ends, and its pool then runs dry: alone, 49
// statements are answered and 50 never are (with SQLite the same happens at 100). The test server runs a
// few commands at once on that backend (devstack.PostgresLanes), so each gets fewer.
const FerretDBPostgresMaxBulk = devstack.FerretDBPostgresMaxBulk

// FerretDBMaxBulk is Store.MaxBulk for the test server when it is FerretDB: store.FerretDBMaxBulk, or
// FerretDBPostgresMaxBulk with BATCHSYNTH_TEST_FERRETDB_BACKEND=postgresql.
func FerretDBMaxBulk() int {
	if os.Getenv("BATCHSYNTH_TEST_FERRETDB_BACKEND") == "postgresql" {
		return FerretDBPostgresMaxBulk
	}
	return store.FerretDBMaxBulk
}

// Logger discards logs unless BATCHSYNTH_TEST_LOG is set.
func Logger() *slog.Logger {
	var out io.Writer = io.Discard
	if os.Getenv("BATCHSYNTH_TEST_LOG") != "" {
		out = os.Stderr
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Step is what one pipeline step cost.
type Step struct {
	Name     string
	Duration time.Duration
	Commands []Command
}

// Run is a job driven through every step.
type Run struct {
	JobID    string
	Requests int // requests of the job
	Batches  []string
	Steps    []Step
}

// Step returns the named step's totals (a step run several times, once per batch, is added up).
func (r *Run) Step(name string) Step {
	out := Step{Name: name}
	for _, s := range r.Steps {
		if s.Name == name {
			out.Duration += s.Duration
			out.Commands = append(out.Commands, s.Commands...)
		}
	}
	return out
}

// RunJob submits words and drives the job through the steps the four handlers run, one after the other on
// this goroutine, with no worker: submit, enqueue (expand), build (claim, render, upload, create), poll
// (until terminal) and apply, per batch. Tasks the steps enqueue stay in Redis unrun. It fails tb unless
// every request succeeded and was applied.
func (s *Stack) RunJob(tb testing.TB, sub pipeline.Submission) *Run {
	tb.Helper()
	ctx := context.Background()
	d := s.Deps
	run := &Run{}
	s.Commands.Take()
	step := func(name string, f func() error) {
		tb.Helper()
		start := time.Now()
		if err := f(); err != nil {
			tb.Fatalf("bench: step %s: %v", name, err)
		}
		run.Steps = append(run.Steps, Step{Name: name, Duration: time.Since(start), Commands: s.Commands.Take()})
	}
	step("submit", func() error {
		job, err := d.Submit(ctx, sub)
		if job != nil {
			run.JobID = job.ID
		}
		return err
	})
	step("enqueue", func() error { return d.Enqueue(ctx, run.JobID) })
	model := sub.Model
	if model == "" {
		model = s.Config.Model
	}
	step("build", func() error { return d.Build(ctx, model, true) })
	var batches []store.Batch
	cur, err := s.Store.Collection(store.CollBatches).Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}}))
	if err == nil {
		err = cur.All(ctx, &batches)
	}
	if err != nil {
		tb.Fatalf("bench: listing batches: %v", err)
	}
	s.Commands.Take()
	for _, b := range batches {
		run.Batches = append(run.Batches, b.ID)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			step("poll", func() error { return d.Poll(ctx, b.ID) })
			nb, err := s.Store.Batch(ctx, b.ID)
			if err != nil {
				tb.Fatal(err)
			}
			s.Commands.Take()
			if nb.State == store.BatchTerminal {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("bench: batch %s still %s (%s)", b.ID, nb.State, nb.OpenAIStatus)
			}
			time.Sleep(20 * time.Millisecond)
		}
		step("apply", func() error { return d.Apply(ctx, b.ID) })
	}
	p, err := d.Progress(ctx, run.JobID)
	if err != nil {
		tb.Fatal(err)
	}
	s.Commands.Take()
	run.Requests = p.Total
	if !p.Finished || p.States[store.StateSucceeded] != p.Total || p.Total == 0 {
		tb.Fatalf("bench: job %s not finished cleanly: %d requests, states %v", run.JobID, p.Total, p.States)
	}
	return run
}

// PerThousand is n per 1,000 of of.
func PerThousand(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) * 1000 / float64(of)
}

// FormatSteps is a table of a run's steps for logs: per step its time, the commands sent (and per 1,000
// requests), the write commands among them, the lease renewals, and the commands the same step sends on
// MongoDB (Tally.At with store.MaxBulkDefault).
func FormatSteps(r *Run, maxBulk int) string {
	out := fmt.Sprintf("%d requests, %d batches, Store.MaxBulk %d\n", r.Requests, len(r.Batches), maxBulk)
	out += fmt.Sprintf("%-8s %10s %9s %9s %9s %9s %12s %12s\n", "step", "time", "commands", "per 1k", "writes", "renewals", "on MongoDB", "per 1k")
	for _, name := range []string{"submit", "enqueue", "build", "poll", "apply"} {
		st := r.Step(name)
		t := NewTally(st.Commands, maxBulk)
		at := t.At(store.MaxBulkDefault)
		out += fmt.Sprintf("%-8s %10s %9d %9.1f %9d %9d %12d %12.1f   %s\n", name, st.Duration.Round(time.Millisecond), t.Total,
			PerThousand(t.Total, r.Requests), t.Bulk, t.Renewals, at, PerThousand(at, r.Requests), t.Breakdown())
	}
	return out
}
