package integration

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testfleet"
)

func waitFinished(t *testing.T, d *pipeline.Deps, jobID string, timeout time.Duration) *pipeline.JobProgress {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var p *pipeline.JobProgress
	var err error
	for time.Now().Before(deadline) {
		p, err = d.Progress(ctx, jobID)
		if err != nil {
			t.Fatalf("progress: %v", err)
		}
		if p.Finished {
			return p
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("job %s not finished after %s: status %s, states %v", jobID, timeout, p.Job.Status, p.States)
	return nil
}

// TestFleetEndToEnd runs 200 real words with three components through two worker servers and the scheduler,
// then checks Floridify's collections the way a user would.
//
// It runs alone, before the parallel tests resume: its 978 requests would hold their server's one lane for
// minutes and starve the fault tests' timing.
func TestFleetEndToEnd(t *testing.T) {
	outOfProcess(t)
	words := envInt("BATCHSYNTH_TEST_WORDS", 200)
	maxLines := envInt("BATCHSYNTH_TEST_MAX_LINES", 400) // forces several input files, exercising the split
	f := testfleet.Start(t, testfleet.Options{Workers: 2, Tune: func(c *config.Config) { c.MaxLines = maxLines }})
	ctx := context.Background()
	comps := []string{"synonyms", "examples", "cefr_level"}
	job, err := f.Deps.Submit(ctx, pipeline.Submission{Source: "test", Words: bench.Words(t, words), Components: comps, Mode: "packed"})
	if err != nil {
		t.Fatal(err)
	}
	p := waitFinished(t, f.Deps, job.ID, 25*time.Minute)
	st := f.Store

	// Every request succeeded exactly once, and was applied.
	if p.Job.Definitions == 0 || p.Total != p.Job.Definitions {
		t.Fatalf("want one packed request per definition: %d definitions, %d requests", p.Job.Definitions, p.Total)
	}
	if p.States[store.StateSucceeded] != p.Total {
		t.Fatalf("want every request succeeded, got %v", p.States)
	}
	var reqs []store.Request
	cur, err := st.Collection(store.CollRequests).Find(ctx, bson.M{"job_ids": job.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &reqs); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if r.Attempts != 1 || !r.Applied || r.Result == "" || len(r.Errors) > 0 {
			t.Fatalf("request %s: attempts %d applied %v errors %v", r.ID, r.Attempts, r.Applied, r.Errors)
		}
		if !slices.Equal(r.Components, comps) {
			t.Fatalf("request %s: components %v", r.ID, r.Components)
		}
	}

	// Every batch document is applied and completed; the emulator created exactly those batches.
	var batches []store.Batch
	cur, err = st.Collection(store.CollBatches).Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &batches); err != nil {
		t.Fatal(err)
	}
	wantBatches := (p.Total + maxLines - 1) / maxLines
	if len(batches) < wantBatches {
		t.Fatalf("want at least %d batches for %d requests at %d lines each, got %d", wantBatches, p.Total, maxLines, len(batches))
	}
	ours := map[string]bool{}
	var lines int
	for _, b := range batches {
		if b.State != store.BatchApplied || b.OpenAIStatus != "completed" || b.RequestCount > maxLines {
			t.Fatalf("batch %s: state %s status %s requests %d", b.ID, b.State, b.OpenAIStatus, b.RequestCount)
		}
		ours[b.OpenAIBatchID] = true
		lines += b.RequestCount
	}
	if lines != p.Total {
		t.Fatalf("batches carry %d lines for %d requests", lines, p.Total)
	}
	emu := f.Emulator.Batches()
	if len(emu) != len(batches) {
		t.Fatalf("emulator created %d batches, MongoDB has %d", len(emu), len(batches))
	}
	for _, eb := range emu {
		if !ours[eb.ID] || eb.Metadata[openaibatch.MetadataBatchID] == "" {
			t.Fatalf("emulator batch %s (metadata %v) has no batch document", eb.ID, eb.Metadata)
		}
	}

	// Every definition has each field in Floridify's shape; examples are linked both ways, none duplicated.
	var defs []store.Definition
	cur, err = st.Collection(store.CollDefinitions).Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &defs); err != nil {
		t.Fatal(err)
	}
	if len(defs) != p.Job.Definitions {
		t.Fatalf("want %d definitions in MongoDB, got %d", p.Job.Definitions, len(defs))
	}
	// One read of every example: FerretDB scans the collection for each query, so a FindOne per link would take
	// minutes.
	var examples []store.Example
	cur, err = st.Collection(store.CollExamples).Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &examples); err != nil {
		t.Fatal(err)
	}
	exampleByID := make(map[bson.ObjectID]store.Example, len(examples))
	for _, ex := range examples {
		exampleByID[ex.ID] = ex
	}
	linked := 0
	for _, d := range defs {
		if len(d.Synonyms) == 0 {
			t.Fatalf("definition %s has no synonyms", d.ID.Hex())
		}
		if d.CEFRLevel == nil || !slices.Contains([]string{"A1", "A2", "B1", "B2", "C1", "C2"}, *d.CEFRLevel) {
			t.Fatalf("definition %s: cefr_level %v", d.ID.Hex(), d.CEFRLevel)
		}
		if len(d.ExampleIDs) == 0 {
			t.Fatalf("definition %s has no examples", d.ID.Hex())
		}
		seen := map[bson.ObjectID]bool{}
		for _, id := range d.ExampleIDs {
			if seen[id] {
				t.Fatalf("definition %s links example %s twice", d.ID.Hex(), id.Hex())
			}
			seen[id] = true
			ex, ok := exampleByID[id]
			if !ok {
				t.Fatalf("example %s of definition %s does not exist", id.Hex(), d.ID.Hex())
			}
			if ex.DefinitionID != d.ID || ex.Type != "generated" || ex.Text == "" || ex.ModelInfo == nil || ex.ModelInfo.Name == "" {
				t.Fatalf("example %s: %+v", id.Hex(), ex)
			}
		}
		linked += len(d.ExampleIDs)
	}
	nEx := int64(len(examples))
	if int(nEx) != linked {
		t.Fatalf("%d example documents but %d links: an example is orphaned or duplicated", nEx, linked)
	}

	// Submitting the same words again asks for nothing: every field is present.
	again, err := f.Deps.Submit(ctx, pipeline.Submission{Source: "test-again", Words: bench.Words(t, words), Components: comps, Mode: "packed"})
	if err != nil {
		t.Fatal(err)
	}
	p2 := waitFinished(t, f.Deps, again.ID, 2*time.Minute)
	if p2.Total != 0 {
		t.Fatalf("second run created %d requests, want 0", p2.Total)
	}
	if n, _ := st.Collection(store.CollExamples).CountDocuments(ctx, bson.M{}); n != nEx {
		t.Fatalf("second run changed examples from %d to %d", nEx, n)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
