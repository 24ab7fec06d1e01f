package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
)

const testToken = "test-token-0123456789"

// testEnv is a web server in front of a real fleet: redis-server, a MongoDB wire server, the Batch API
// emulator over HTTP, and (with workers) asynq servers running the handlers plus the scheduler, wired by
// internal/fleet as the binaries wire them.
type testEnv struct {
	Fleet *fleet.Fleet
	Emu   *emulator.Server
	Srv   *Server
	URL   string
}

type envOptions struct {
	Workers  int // 0: no worker and no scheduler (jobs stay submitted)
	Emulator emulator.Config
	Tune     func(*config.Config)
	Server   func(*Server)
}

func newEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	redisURL := testenv.Redis(t)
	mongoURI := testenv.MongoURI(t)
	_, db := testenv.Mongo(t)
	emu, base := testenv.Emulator(t, o.Emulator)
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg.RedisURL, cfg.MongoURI, cfg.Database = redisURL, mongoURI, db
	cfg.OpenAIKey, cfg.OpenAIBaseURL = "sk-test", base
	cfg.PollInterval, cfg.FlushDelay, cfg.SweepInterval, cfg.SyncInterval = time.Second, time.Second, time.Second, time.Second
	cfg.LeaseDuration, cfg.StaleAfter, cfg.ShutdownTimeout = 3*time.Second, 20*time.Second, 5*time.Second
	cfg.APIToken = testToken
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	var out io.Writer = io.Discard
	if os.Getenv("BATCHSYNTH_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	f, err := fleet.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open fleet: %v", err)
	}
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() { _ = f.RunWorker(ctx) })
	}
	if o.Workers > 0 {
		wg.Go(func() { _ = f.RunScheduler(ctx) })
	}
	reg := prometheus.NewRegistry()
	src := metrics.NewSource(f.Store)
	src.CacheFor = 200 * time.Millisecond
	insp := asynq.NewInspectorFromRedisClient(f.Redis)
	if err := metrics.Register(reg, metrics.Options{Source: src, Inspector: insp, Log: log}); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Deps: f.Deps, RedisOpt: f.RedisOpt, Redis: f.Redis, Token: cfg.APIToken, Log: log, Registry: reg, Metrics: src}
	if o.Server != nil {
		o.Server(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
		cancel()
		wg.Wait()
		f.Close()
	})
	return &testEnv{Fleet: f, Emu: emu, Srv: srv, URL: ts.URL}
}

// sampleWords returns the first n words of examples/words.jsonl (words with their definitions).
func sampleWords(t *testing.T, n int) []store.InputWord {
	t.Helper()
	fh, err := os.Open("../../examples/words.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	p, err := input.Parse(fh)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Words) < n {
		t.Fatalf("examples/words.jsonl has %d words, want %d", len(p.Words), n)
	}
	return p.Words[:n]
}

// do sends a request with the bearer token and returns the response; the caller closes the body.
func (e *testEnv) do(t *testing.T, method, path, contentType string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func submission(t *testing.T, words []store.InputWord) pipeline.Submission {
	t.Helper()
	return pipeline.Submission{Source: "test", Words: words, Components: []string{"synonyms"}, Mode: "packed", Model: "gpt-4o-mini", Priority: pipeline.PriorityNormal}
}

// decode reads a JSON answer into v and closes the body.
func decode(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v\n%s", res.StatusCode, err, b)
	}
}
