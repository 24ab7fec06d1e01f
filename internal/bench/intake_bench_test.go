package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/floridify/batchsynth/internal/web"
	"github.com/floridify/batchsynth/tasks"
)

// BenchmarkIntakeHTTP hands 100,000 words over through the HTTP API, the way a main app that does not share
// Redis and MongoDB with the fleet does: tasks.Client.Submit (the Go client) posts them as JSON to
// POST /v1/jobs of internal/web's server (httptest, in this process), which validates them and calls
// Deps.Submit against the test MongoDB wire server. "headwords" are bare words; "definitions" carry the
// shipped sample's senses under fresh headwords. -short hands over 10,000. Compare with
// internal/pipeline's BenchmarkSubmit (the same words through Deps.Submit alone) run alongside.
func BenchmarkIntakeHTTP(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	sample := Words(b, 1000)
	s := NewStack(b, StackOptions{})
	srv := &web.Server{Deps: s.Deps, Log: Logger()}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	client := tasks.NewClient(ts.URL, "")
	mk := func(withDefs bool) []tasks.Word {
		out := make([]tasks.Word, n)
		for i := range out {
			w := sample[i%len(sample)]
			word := w.Word
			if pass := i / len(sample); pass > 0 {
				word += strconv.Itoa(pass)
			}
			out[i] = tasks.Word{Word: word}
			if withDefs {
				for _, d := range w.Definitions {
					out[i].Definitions = append(out[i].Definitions, tasks.Definition{PartOfSpeech: d.PartOfSpeech, Text: d.Text})
				}
			}
		}
		return out
	}
	for _, shape := range []struct {
		name     string
		withDefs bool
	}{{"headwords", false}, {"definitions", true}} {
		words := mk(shape.withDefs)
		b.Run(fmt.Sprintf("%s/words=%d", shape.name, n), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				acc, err := client.Submit(ctx, tasks.JobRequest{Words: words, Components: []string{"synonyms"}, Source: "bench"})
				if err != nil || acc.Words != n || len(acc.InputErrors) > 0 {
					b.Fatalf("submit: %v %+v", err, acc)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
		})
	}
}
