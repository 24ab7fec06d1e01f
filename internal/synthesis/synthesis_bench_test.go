package synthesis_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/estimate"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// BenchmarkPlan plans and renders the shipped 1,000 words (packed, ten components: 4,707 requests), as
// enqueue-words does for every chunk: deciding what is missing, rendering each body and counting its input
// tokens with tiktoken. Reported per request.
func BenchmarkPlan(b *testing.B) {
	words := bench.Words(b, 1000)
	ins, _, err := estimate.Offline{}.Inputs(context.Background(), words, bench.Components)
	if err != nil {
		b.Fatal(err)
	}
	opts := synthesis.PlanOptions{Mode: synthesis.ModePacked, Model: bench.Model, Components: bench.Components}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n = 0
		for _, w := range ins {
			p, err := synthesis.Plan(w, opts)
			if err != nil {
				b.Fatal(err)
			}
			n += len(p)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkDecode validates 5,000 answers (the emulator's schema-valid synthetic content for the corpus's
// requests) with synthesis.Decode, as apply does for every result line.
func BenchmarkDecode(b *testing.B) {
	const n = 5000
	corpus := bench.DefaultCorpus(b)
	lines := corpus.Lines(n)
	dir := b.TempDir()
	in, out := filepath.Join(dir, "input.jsonl"), filepath.Join(dir, "output.jsonl")
	bench.WriteInput(b, in, lines)
	bench.EmulatorOutput(b, in, out)
	byID := bench.ByCustomID(lines)
	type answer struct {
		req     *bench.Request
		content string
	}
	var answers []answer
	bench.ReadResults(b, out, func(r openaibatch.Result) { answers = append(answers, answer{byID[r.CustomID], r.Content}) })
	if len(answers) != n {
		b.Fatalf("%d answers, want %d", len(answers), n)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range answers {
			if _, err := synthesis.Decode(a.req.Kind, a.req.Word, a.req.NDefs, a.req.Components, a.content); err != nil {
				b.Fatal(err)
			}
		}
	}
	bench.ReportRate(b, n, 0)
}
