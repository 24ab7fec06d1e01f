package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/openai/openai-go/v3"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

// buildBundle is a builder and poller on the test server, a redis-server for the tasks they enqueue and the
// Batch API emulator, with pending requests of one job.
type buildBundle struct {
	*testBundle
	emu   *emulator.Server
	model string
}

func setupBuild(t *testing.T, faults emulator.Faults) *buildBundle {
	t.Helper()
	b := setup(t)
	emu, base := testenv.Emulator(t, emulator.Config{Seed: 11, Faults: faults})
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClient(opt)
	t.Cleanup(func() { _ = q.Close() })
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.PollInterval = time.Second
	b.d.Config, b.d.Queue, b.d.Owner = cfg, q, "builder-test"
	b.d.OpenAI = openaibatch.New(openaibatch.Options{APIKey: "sk-test", BaseURL: base, MaxRetries: 1, Timeout: time.Minute})
	job := newJob("job-build", synthesis.ModePacked, []string{"cefr_level", "register"})
	b.expand(t, job, testWords)
	return &buildBundle{testBundle: b, emu: emu, model: job.Model}
}

func (b *buildBundle) batches(t *testing.T) []store.Batch {
	t.Helper()
	return all[store.Batch](t, b.ctx, b.d.Store.Collection(store.CollBatches), bson.M{})
}

func (b *buildBundle) requestStates(t *testing.T) map[store.RequestState]int {
	t.Helper()
	n, err := b.d.Store.StateCounts(b.ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBuildAndPoll: a build claims every pending request into one batch document and moves it to submitted
// with its requests; polls record the provider's status monotonically and move it to terminal.
func TestBuildAndPoll(t *testing.T) {
	t.Parallel()
	b := setupBuild(t, emulator.Faults{})
	pending := b.requestStates(t)[store.StatePending]
	if pending == 0 {
		t.Fatal("no pending request")
	}
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	bs := b.batches(t)
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	sb := bs[0]
	if sb.State != store.BatchSubmitted || sb.OpenAIBatchID == "" || sb.InputFileID == "" || sb.RequestCount != pending ||
		sb.CreateAttempts != 1 || sb.UploadAttempts != 1 || len(sb.StatusHistory) != 1 || sb.StatusRank != store.StatusRank(sb.OpenAIStatus) {
		t.Fatalf("batch after build: %+v", sb)
	}
	if got := b.requestStates(t); got[store.StateSubmitted] != pending {
		t.Fatalf("requests after build: %v, want %d submitted", got, pending)
	}
	var reqs []store.Request = all[store.Request](t, b.ctx, b.d.Store.Collection(store.CollRequests), bson.M{})
	for _, r := range reqs {
		if r.BatchID != sb.ID || r.Attempts != 1 {
			t.Fatalf("request %s: batch %q attempts %d; want %s and 1", r.ID, r.BatchID, r.Attempts, sb.ID)
		}
	}
	// Nothing left: a second build creates nothing.
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	if n := len(b.batches(t)); n != 1 {
		t.Fatalf("%d batches after a second build, want 1", n)
	}

	if err := b.d.Poll(b.ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	tb, err := b.d.Store.Batch(b.ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tb.State != store.BatchTerminal || tb.OpenAIStatus != "completed" || tb.OutputFileID == "" || tb.TerminalAt == nil ||
		tb.PollCount != 1 || len(tb.StatusHistory) != 2 || tb.RequestCounts.Total != int64(pending) {
		t.Fatalf("batch after poll: %+v", tb)
	}
	// A stale status changes nothing, not even the poll count.
	moved, err := b.d.Store.RecordProviderStatus(b.ctx, tb.ID, tb.OpenAIStatus, store.ProviderStatus{Status: "in_progress"}, b.d.now())
	if err != nil || moved {
		t.Fatalf("stale status: moved %v, %v", moved, err)
	}
	if err := b.d.recordStatus(b.ctx, tb, &openai.Batch{ID: tb.OpenAIBatchID, Status: "in_progress"}); err != nil {
		t.Fatal(err)
	}
	again, err := b.d.Store.Batch(b.ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != store.BatchTerminal || again.OpenAIStatus != "completed" || again.PollCount != 1 {
		t.Fatalf("batch after a stale status: %+v", again)
	}
}

// TestCreateFileNotReady: a create refused because the fresh input file is not visible yet moves the batch
// document back to uploaded, and the next build creates it at once.
func TestCreateFileNotReady(t *testing.T) {
	t.Parallel()
	b := setupBuild(t, emulator.Faults{RateFileNotFound: 1, FileNotFoundWindow: time.Hour})
	err := b.d.Build(b.ctx, b.model, true)
	if err == nil || !strings.Contains(err.Error(), "not visible yet") {
		t.Fatalf("build: %v, want an input file not visible yet", err)
	}
	bs := b.batches(t)
	if len(bs) != 1 || bs[0].State != store.BatchUploaded || bs[0].CreateAttempts != 1 || bs[0].LeaseUntil.After(b.d.now()) {
		t.Fatalf("batches after a refused create: %+v", bs)
	}
	if got := b.requestStates(t); got[store.StateClaimed] != bs[0].RequestCount {
		t.Fatalf("requests: %v, want %d claimed", got, bs[0].RequestCount)
	}
	b.emu.SetFaults(emulator.Faults{})
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	sb, err := b.d.Store.Batch(b.ctx, bs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != store.BatchSubmitted || sb.CreateAttempts != 2 || sb.InputFileID != bs[0].InputFileID {
		t.Fatalf("batch after the second build: %+v", sb)
	}
	if got := b.requestStates(t); got[store.StateSubmitted] != sb.RequestCount {
		t.Fatalf("requests: %v, want %d submitted", got, sb.RequestCount)
	}
}

// TestBuildLeaseLost: a builder whose batch document was moved on by another worker, who holds its lease
// now, stops working on it and leaves it as that worker has it.
func TestBuildLeaseLost(t *testing.T) {
	t.Parallel()
	b := setupBuild(t, emulator.Faults{})
	now := b.d.now()
	doc := store.Batch{ID: NewID("sb"), Model: b.model, State: store.BatchUploading, StatusHistory: []store.StatusChange{},
		LeaseOwner: "another-builder", LeaseUntil: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}
	if err := b.d.Store.InsertBatch(b.ctx, &doc); err != nil {
		t.Fatal(err)
	}
	// As this builder last saw it: claiming, and nothing claimed (so it would abandon it).
	stale := doc
	stale.State, stale.LeaseOwner = store.BatchClaiming, b.d.owner()
	if err := b.d.advance(b.ctx, &stale); !errors.Is(err, errLeaseLost) {
		t.Fatalf("advance: %v, want errLeaseLost", err)
	}
	if stale.State != store.BatchUploading || stale.LeaseOwner != "another-builder" {
		t.Fatalf("reloaded batch: %+v", stale)
	}
	got, err := b.d.Store.Batch(b.ctx, doc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.BatchUploading || len(got.Errors) > 0 {
		t.Fatalf("batch after a lost lease: %+v", got)
	}
	// Its lease is not ours to renew or release.
	if held, err := b.d.Store.RenewLease(b.ctx, doc.ID, b.d.owner(), store.BuildStates, now.Add(time.Hour)); err != nil || held {
		t.Fatalf("renewing another's lease: %v %v", held, err)
	}
	b.d.releaseLease(doc.ID, 0)
	if got, _ := b.d.Store.Batch(b.ctx, doc.ID); !got.LeaseUntil.Equal(doc.LeaseUntil.Truncate(time.Millisecond)) {
		t.Fatalf("lease until %v after another's release, want %v", got.LeaseUntil, doc.LeaseUntil)
	}
	if held, err := b.d.Store.RenewLease(b.ctx, doc.ID, "another-builder", store.BuildStates, now.Add(time.Hour)); err != nil || !held {
		t.Fatalf("renewing the owner's lease: %v %v", held, err)
	}
}

// TestModelHold: a held model's build claims nothing until the hold ends.
func TestModelHold(t *testing.T) {
	t.Parallel()
	b := setupBuild(t, emulator.Faults{})
	if err := b.d.HoldModel(b.ctx, b.model, b.d.now().Add(time.Hour), "test"); err != nil {
		t.Fatal(err)
	}
	if held, until, err := b.d.modelHeld(b.ctx, b.model); err != nil || !held || until.Before(b.d.now()) {
		t.Fatalf("modelHeld: %v %v %v", held, until, err)
	}
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	if n := len(b.batches(t)); n != 0 {
		t.Fatalf("%d batches built for a held model", n)
	}
	if held, _, err := b.d.modelHeld(b.ctx, "never-held"); err != nil || held {
		t.Fatalf("modelHeld of a model never held: %v %v", held, err)
	}
	if err := b.d.HoldModel(b.ctx, b.model, b.d.now().Add(-time.Second), "test: over"); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	if n := len(b.batches(t)); n != 1 {
		t.Fatalf("%d batches once the hold ended, want 1", n)
	}
}

// TestCreateOutcomeUnknown: a create whose answer was lost leaves the batch document creating, handed back
// after reconcileAfter; the next build finds the created batch by its metadata instead of creating another.
func TestCreateOutcomeUnknown(t *testing.T) {
	t.Parallel()
	b := setupBuild(t, emulator.Faults{RateLoseCreate: 1})
	err := b.d.Build(b.ctx, b.model, true)
	if err == nil || !strings.Contains(err.Error(), "outcome unknown") {
		t.Fatalf("build: %v, want an unknown outcome", err)
	}
	bs := b.batches(t)
	if len(bs) != 1 || bs[0].State != store.BatchCreating || bs[0].CreateAttempts != 1 || !bs[0].LeaseUntil.After(b.d.now()) {
		t.Fatalf("batches after a lost create: %+v", bs)
	}
	// Still leased for reconcileAfter: a build now leaves it alone.
	b.emu.SetFaults(emulator.Faults{})
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	if sb, err := b.d.Store.Batch(b.ctx, bs[0].ID); err != nil || sb.State != store.BatchCreating {
		t.Fatalf("batch within reconcileAfter: %+v %v", sb, err)
	}
	later := time.Now().Add(2 * reconcileAfter)
	b.d.Now = func() time.Time { return later }
	if err := b.d.Build(b.ctx, b.model, true); err != nil {
		t.Fatal(err)
	}
	sb, err := b.d.Store.Batch(b.ctx, bs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != store.BatchSubmitted || sb.OpenAIBatchID == "" || sb.CreateAttempts != 1 {
		t.Fatalf("batch after reconciling: %+v", sb)
	}
	if got := b.requestStates(t); got[store.StateSubmitted] != sb.RequestCount {
		t.Fatalf("requests: %v, want %d submitted", got, sb.RequestCount)
	}
}
