package pipeline_test

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
)

// immediateDeps wires pipeline.Deps to a real redis-server, MongoDB wire server and the emulator, with no
// worker: the test calls the steps itself, so no batch build can take the requests first.
func immediateDeps(t *testing.T, faults emulator.Faults) (*pipeline.Deps, *emulator.Server) {
	t.Helper()
	ctx := context.Background()
	redisURL := testenv.Redis(t)
	cl, db := testenv.Mongo(t)
	emu, base := testenv.Emulator(t, emulator.Config{Faults: faults, Seed: 7})
	st := store.New(cl, db)
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClient(opt)
	t.Cleanup(func() { _ = q.Close() })
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxAttempts = 2
	cfg.ImmediateConcurrency, cfg.ImmediateRate = 3, 100
	oa := openaibatch.New(openaibatch.Options{APIKey: "sk-test", BaseURL: base, MaxRetries: 0, Timeout: 10 * time.Second})
	return &pipeline.Deps{Store: st, OpenAI: oa, Queue: q, Config: cfg, Owner: "test"}, emu
}

func someWords(t *testing.T, n int) []store.InputWord {
	t.Helper()
	f, err := os.Open("../../examples/words.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := input.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return p.Words[:n]
}

func urgentJob(t *testing.T, d *pipeline.Deps, words []store.InputWord) *store.Job {
	t.Helper()
	ctx := context.Background()
	job, err := d.Submit(ctx, pipeline.Submission{Source: "test", Words: words, Components: []string{"synonyms", "cefr_level"},
		Mode: "packed", Model: "gpt-4o-mini", Priority: pipeline.PriorityUrgent})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Enqueue(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	return job
}

func requestsOf(t *testing.T, d *pipeline.Deps, jobID string) []store.Request {
	t.Helper()
	cur, err := d.Store.Collection(store.CollRequests).Find(context.Background(), bson.M{"job_ids": jobID})
	if err != nil {
		t.Fatal(err)
	}
	var rs []store.Request
	if err := cur.All(context.Background(), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Fatal("the job has no request")
	}
	return rs
}

func TestImmediateFor(t *testing.T) {
	var c config.Config
	if !pipeline.ImmediateFor(c, pipeline.PriorityUrgent, 10_000) || pipeline.ImmediateFor(c, pipeline.PriorityNormal, 1) {
		t.Error("with MaxWords 0 only urgent jobs go immediate")
	}
	c.ImmediateMaxWords = 5
	if !pipeline.ImmediateFor(c, pipeline.PriorityNormal, 5) || pipeline.ImmediateFor(c, pipeline.PriorityNormal, 6) || pipeline.ImmediateFor(c, "", 0) {
		t.Error("MaxWords 5: a job of 1..5 words goes immediate, 6 does not")
	}
	c, err := config.FromEnv(func(k string) string {
		return map[string]string{"BATCHSYNTH_IMMEDIATE_MAX_WORDS": "20", "BATCHSYNTH_IMMEDIATE_CONCURRENCY": "8", "BATCHSYNTH_IMMEDIATE_RATE": "2.5"}[k]
	})
	if err != nil || c.ImmediateMaxWords != 20 || c.ImmediateConcurrency != 8 || c.ImmediateRate != 2.5 {
		t.Errorf("from env: %+v %v", c, err)
	}
	for _, name := range []string{"BATCHSYNTH_IMMEDIATE_MAX_WORDS", "BATCHSYNTH_IMMEDIATE_CONCURRENCY", "BATCHSYNTH_IMMEDIATE_RATE"} {
		if _, err := config.FromEnv(func(k string) string {
			if k == name {
				return "-1"
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=-1: error %v, want one naming it", name, err)
		}
	}
}

// TestRunImmediate sends an urgent job's requests as chat completions and applies them like a batch would,
// at immediate prices.
func TestRunImmediate(t *testing.T) {
	d, emu := immediateDeps(t, emulator.Faults{})
	ctx := context.Background()
	job := urgentJob(t, d, someWords(t, 3))
	if err := d.RunImmediate(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if emu.Stats().ChatCompletions == 0 {
		t.Fatal("no chat completion reached the emulator")
	}
	var usage store.Usage
	var cost float64
	for _, r := range requestsOf(t, d, job.ID) {
		if r.State != store.StateSucceeded || !r.Applied || r.BatchID != "" || r.Usage.OutputTokens == 0 {
			t.Errorf("request %s: state %s applied %v batch %q usage %+v", r.ID, r.State, r.Applied, r.BatchID, r.Usage)
		}
		if want := pricing.Immediate(r.Model, r.Usage); math.Abs(r.CostUSD-want) > 1e-12 || want == 0 {
			t.Errorf("request %s cost %v, want %v at immediate prices", r.ID, r.CostUSD, want)
		}
		usage, cost = usage.Add(r.Usage), cost+r.CostUSD
		for _, id := range r.DefinitionIDs {
			var def store.Definition
			if err := d.Store.Collection(store.CollDefinitions).FindOne(ctx, bson.M{"_id": id}).Decode(&def); err != nil {
				t.Fatal(err)
			}
			if len(def.Synonyms) == 0 || def.CEFRLevel == nil {
				t.Errorf("definition %s not enriched: synonyms %v cefr %v", id.Hex(), def.Synonyms, def.CEFRLevel)
			}
		}
	}
	p, err := d.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Finished || p.Status != store.JobDone || len(p.Batches) != 0 || math.Abs(p.SavedUSD) > 1e-9 || p.CostUSD <= 0 {
		t.Errorf("progress %+v", p)
	}
	// A second run finds nothing pending and sends nothing.
	before := emu.Stats().ChatCompletions
	if err := d.RunImmediate(ctx, job.ID); err != nil || emu.Stats().ChatCompletions != before {
		t.Errorf("second run: %v, %d calls", err, emu.Stats().ChatCompletions-before)
	}
}

// TestRunImmediateFailures: answers that fail validation are attempts (dead after the last), and a call
// that fails for transport reasons gives its attempt back and leaves the request to the batch path.
func TestRunImmediateFailures(t *testing.T) {
	d, emu := immediateDeps(t, emulator.Faults{RateInvalidSchema: 1})
	ctx := context.Background()
	job := urgentJob(t, d, someWords(t, 2))
	if err := d.RunImmediate(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range requestsOf(t, d, job.ID) {
		if r.State != store.StateDead || r.Attempts != d.Config.MaxAttempts || len(r.Errors) != d.Config.MaxAttempts || r.LastError == "" {
			t.Errorf("request %s: state %s, %d attempts, errors %v", r.ID, r.State, r.Attempts, r.Errors)
		}
	}

	emu.SetFaults(emulator.Faults{Rate503: 1})
	job2 := urgentJob(t, d, someWords(t, 4)[2:])
	if err := d.RunImmediate(ctx, job2.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range requestsOf(t, d, job2.ID) {
		if r.State != store.StatePending || r.Attempts != 0 || r.BatchID != "" {
			t.Errorf("request %s after 503s: state %s, %d attempts, batch %q; want pending for a batch", r.ID, r.State, r.Attempts, r.BatchID)
		}
	}
}
