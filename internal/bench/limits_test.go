package bench

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

func batchesOf(t *testing.T, s *Stack) []store.Batch {
	t.Helper()
	cur, err := s.Store.Collection(store.CollBatches).Find(context.Background(), bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var bs []store.Batch
	if err := cur.All(context.Background(), &bs); err != nil {
		t.Fatal(err)
	}
	return bs
}

// TestBuildLimits checks the input-file limits and the per-model token budget at work on real services:
// the builder (Deps.Build, as build-batch runs it) splits a job into files of at most BATCHSYNTH_MAX_LINES
// lines and BATCHSYNTH_MAX_FILE_BYTES bytes, and stops creating batches once the model's enqueued tokens
// would pass BATCHSYNTH_TOKEN_BUDGET, going on when applied batches free the budget.
//
// A request that does not fit in what is left of the budget waits; it goes alone only when nothing is
// enqueued. The limits are scaled down (OpenAI's are 50,000 lines and 200 MB) so that a 30-word job (about
// 140 packed requests of about 3.4 KB and 750 tokens) crosses them.
func TestBuildLimits(t *testing.T) {
	// An out-of-process FerretDB: under -race an in-process one is most of the run time.
	if err := testenv.UseMongoServer(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sub := pipeline.Submission{Source: "bench", Words: Words(t, 30), Components: Components, Mode: synthesis.ModePacked}

	t.Run("LinesAndBytes", func(t *testing.T) {
		// 25 lines of about 3.5 KB would be 87 KB: the byte limit cuts every file first.
		const maxLines, maxBytes = 25, 40 << 10
		s := NewStack(t, StackOptions{Tune: func(c *config.Config) { c.MaxLines, c.MaxFileBytes = maxLines, maxBytes }})
		run := s.RunJob(t, sub)
		bs := batchesOf(t, s)
		lines := 0
		var largest int64
		for _, b := range bs {
			if b.RequestCount > maxLines || b.Bytes > maxBytes {
				t.Fatalf("batch %s: %d lines, %d bytes; limits %d lines, %d bytes", b.ID, b.RequestCount, b.Bytes, maxLines, maxBytes)
			}
			lines += b.RequestCount
			largest = max(largest, b.Bytes)
		}
		byLines := (run.Requests + maxLines - 1) / maxLines
		if lines != run.Requests || len(bs) <= byLines {
			t.Fatalf("%d requests in %d batches (%d lines); the line limit alone makes %d", run.Requests, len(bs), lines, byLines)
		}
		t.Logf("%d requests split into %d batches of at most %d bytes (largest %d); the %d-line limit alone would make %d",
			run.Requests, len(bs), maxBytes, largest, maxLines, byLines)
	})

	t.Run("TokenBudget", func(t *testing.T) {
		const maxLines, budget = 20, 40_000
		s := NewStack(t, StackOptions{Tune: func(c *config.Config) { c.MaxLines, c.TokenBudget = maxLines, budget }})
		d := s.Deps
		job, err := d.Submit(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Enqueue(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		rounds := 0
		for {
			if err := d.Build(ctx, s.Config.Model, true); err != nil {
				t.Fatal(err)
			}
			var inFlight int64
			var open []store.Batch
			for _, b := range batchesOf(t, s) {
				if b.State == store.BatchSubmitted || b.State == store.BatchTerminal {
					inFlight += b.InputTokensEst
					open = append(open, b)
				}
			}
			if inFlight > budget {
				t.Fatalf("round %d: %d tokens enqueued in %d batches, over the budget of %d", rounds, inFlight, len(open), budget)
			}
			states, err := s.Store.StateCounts(ctx, bson.M{"job_ids": job.ID})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d: %d batches in flight with %d tokens (budget %d); requests %v", rounds, len(open), inFlight, budget, states)
			if len(open) == 0 {
				if states[store.StatePending] > 0 {
					t.Fatalf("the builder stopped with %d requests pending and no batch in flight", states[store.StatePending])
				}
				break
			}
			if rounds == 0 && states[store.StatePending] == 0 {
				t.Fatal("the first round sent every request: the budget did not bind")
			}
			// Finish the batches in flight: the budget they held is free again.
			for _, b := range open {
				for {
					if err := d.Poll(ctx, b.ID); err != nil {
						t.Fatal(err)
					}
					nb, err := s.Store.Batch(ctx, b.ID)
					if err != nil {
						t.Fatal(err)
					}
					if nb.State == store.BatchTerminal {
						break
					}
				}
				if err := d.Apply(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
			rounds++
		}
		if rounds < 2 {
			t.Fatalf("%d rounds: the budget should have held the job back at least once", rounds)
		}
	})
}
