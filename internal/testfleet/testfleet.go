// Package testfleet runs a whole batchsynth fleet inside a test: worker servers and a scheduler wired by
// internal/fleet exactly as the binaries wire them, against a real redis-server, a real MongoDB wire server
// and the Batch API emulator over HTTP. Nothing is mocked.
package testfleet

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/testenv"
)

// Options shape the fleet; zero values give a fast test fleet.
type Options struct {
	Workers    int             // worker servers (separate asynq servers, as separate processes would be); default 2
	Schedulers int             // scheduler instances competing for the lease, each in its own process; default 1
	Emulator   emulator.Config // instant pace unless set
	// OpenAITimeout, when set, is every process's per-attempt OpenAI request timeout (the fleet's own is 2 min).
	OpenAITimeout time.Duration
	// Tune adjusts the configuration before the fleet starts.
	Tune func(*config.Config)
}

// Fleet is a running test fleet.
type Fleet struct {
	*fleet.Fleet // the first process: use its Deps to submit and inspect
	Emulator     *emulator.Server
	Config       config.Config
	Database     string
	RedisURL     string
	// Workers and Schedulers are the running roles, each on its own process-like fleet.Fleet (own id and
	// connections); Stop one to act out a process that goes away.
	Workers    []*Role
	Schedulers []*Role
}

// Role is one worker or scheduler of the fleet.
type Role struct {
	Fleet  *fleet.Fleet
	cancel context.CancelFunc
	done   chan struct{}
}

// ID is the role's process id (what the scheduler lease holds).
func (r *Role) ID() string { return r.Fleet.ID }

// Stop stops the role as SIGTERM would (a scheduler gives up its lease) and waits for it.
func (r *Role) Stop() {
	r.cancel()
	<-r.done
}

// Crash stops the role as SIGKILL would, as far as Redis can tell: its Redis connections are cut first, so it
// can neither renew nor give up what it holds there (the scheduler lease), then it is stopped. Only for a
// role with a process of its own (not the first worker, whose connections the test uses).
func (r *Role) Crash() {
	_ = r.Fleet.Redis.Close()
	r.Stop()
}

// Start runs the fleet until the test ends.
func Start(t testing.TB, o Options) *Fleet {
	t.Helper()
	redisURL := testenv.Redis(t)
	mongoURI := testenv.MongoURI(t)
	_, db := testenv.Mongo(t)
	emu, baseURL := testenv.Emulator(t, o.Emulator)
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg.RedisURL, cfg.MongoURI, cfg.Database = redisURL, mongoURI, db
	cfg.OpenAIKey, cfg.OpenAIBaseURL = "sk-test", baseURL
	cfg.PollInterval, cfg.FlushDelay, cfg.SweepInterval, cfg.SyncInterval = time.Second, time.Second, time.Second, time.Second
	cfg.LeaseDuration, cfg.StaleAfter, cfg.ShutdownTimeout = 3*time.Second, 20*time.Second, 5*time.Second
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	var out io.Writer = io.Discard
	if os.Getenv("BATCHSYNTH_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	workers := o.Workers
	if workers == 0 {
		workers = 2
	}
	schedulers := max(o.Schedulers, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var all []*fleet.Fleet
	tf := &Fleet{Config: cfg, Database: db, RedisURL: redisURL, Emulator: emu}
	open := func(name string, i int) *fleet.Fleet {
		f, err := fleet.Open(ctx, cfg, log.With("process", name, "n", i))
		if err != nil {
			cancel()
			wg.Wait()
			for _, f := range all {
				f.Close()
			}
			t.Fatalf("open fleet process %s %d: %v", name, i, err)
		}
		if o.OpenAITimeout > 0 {
			f.OpenAI = openaibatch.New(openaibatch.Options{APIKey: cfg.OpenAIKey, BaseURL: cfg.OpenAIBaseURL, MaxRetries: 3, Timeout: o.OpenAITimeout})
			f.Deps.OpenAI = f.OpenAI
		}
		all = append(all, f)
		return f
	}
	run := func(f *fleet.Fleet, fn func(*fleet.Fleet, context.Context) error) *Role {
		rctx, rcancel := context.WithCancel(ctx)
		r := &Role{Fleet: f, cancel: rcancel, done: make(chan struct{})}
		wg.Go(func() {
			defer close(r.done)
			_ = fn(f, rctx)
		})
		return r
	}
	for i := 0; i < workers; i++ {
		f := open("worker", i)
		if tf.Fleet == nil {
			tf.Fleet = f
		}
		tf.Workers = append(tf.Workers, run(f, (*fleet.Fleet).RunWorker))
	}
	for i := 0; i < schedulers; i++ {
		// A single scheduler shares the first process, as `batchsynth dev` does; competing ones each get a
		// process of their own, so that one can die without taking a worker with it.
		f := tf.Fleet
		if schedulers > 1 {
			f = open("scheduler", i)
		}
		tf.Schedulers = append(tf.Schedulers, run(f, (*fleet.Fleet).RunScheduler))
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, f := range all {
			f.Close()
		}
	})
	return tf
}
