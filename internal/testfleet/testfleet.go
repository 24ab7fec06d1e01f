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
	"github.com/floridify/batchsynth/internal/testenv"
)

// Options shape the fleet; zero values give a fast test fleet.
type Options struct {
	Workers  int             // worker servers (separate asynq servers, as separate processes would be); default 2
	Emulator emulator.Config // instant pace unless set
	// Tune adjusts the configuration before the fleet starts.
	Tune func(*config.Config)
}

// Fleet is a running test fleet.
type Fleet struct {
	*fleet.Fleet // the first process: use its Deps to submit and inspect
	Emulator     *emulator.Server
	Config       config.Config
	Database     string
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
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var first *fleet.Fleet
	var all []*fleet.Fleet
	for i := 0; i < workers; i++ {
		f, err := fleet.Open(ctx, cfg, log.With("process", i))
		if err != nil {
			cancel()
			t.Fatalf("open fleet process %d: %v", i, err)
		}
		all = append(all, f)
		if first == nil {
			first = f
		}
		wg.Go(func() { _ = f.RunWorker(ctx) })
	}
	wg.Go(func() { _ = first.RunScheduler(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, f := range all {
			f.Close()
		}
	})
	return &Fleet{Fleet: first, Emulator: emu, Config: cfg, Database: db}
}
