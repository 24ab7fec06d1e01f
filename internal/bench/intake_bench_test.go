package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/web"
	"github.com/floridify/batchsynth/tasks"
)

// BenchmarkIntake hands 100,000 words over, side by side in one process and one database, through the two
// doors of the main app:
//
//   - go: Deps.Submit (the words are stored in input chunks of 1,000, then one enqueue-words task).
//   - http: the Go client tasks.Client.Submit, posting JSON to POST /v1/jobs of internal/web's server
//     (httptest, in this process), which reads and validates the words and calls Deps.Submit.
//
// Each of go and http runs on a database of its own, so neither is measured on the other's leftovers.
//   - bson: Submit's own encoding of the same input documents (bson.Marshal), no server: the share of the
//     work that is batchsynth's rather than the database's.
//
// "headwords" are bare words (words Floridify has); "definitions" carry the shipped sample's senses (4.7 a
// word on average) under fresh headwords. -short hands over 10,000 (2,000 with definitions). The embedded
// FerretDB runs in this process, so its CPU and allocations are counted in go and http.
func BenchmarkIntake(b *testing.B) {
	n, nDefs := 100_000, 100_000
	if testing.Short() {
		n, nDefs = 10_000, 2_000
	}
	all := Cycled(b, max(n, nDefs))
	for _, shape := range []struct {
		name  string
		words []store.InputWord
	}{{"headwords", Headwords(all[:n])}, {"definitions", all[:nDefs]}} {
		words := shape.words
		n := len(words)
		wire := make([]tasks.Word, n)
		for i, w := range words {
			wire[i] = tasks.Word{Word: w.Word}
			for _, d := range w.Definitions {
				wire[i].Definitions = append(wire[i].Definitions, tasks.Definition{PartOfSpeech: d.PartOfSpeech, Text: d.Text})
			}
		}
		b.Run(fmt.Sprintf("go/%s/words=%d", shape.name, n), func(b *testing.B) {
			s := NewStack(b, StackOptions{}) // a database of its own: FerretDB's inserts slow down as collections grow
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				job, err := s.Deps.Submit(ctx, pipeline.Submission{Source: "bench", Words: words, Components: []string{"synonyms"}})
				if err != nil || job.WordsTotal != n {
					b.Fatalf("submit: %v", err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
		})
		b.Run(fmt.Sprintf("http/%s/words=%d", shape.name, n), func(b *testing.B) {
			s := NewStack(b, StackOptions{})
			srv := &web.Server{Deps: s.Deps, Log: Logger()}
			ts := httptest.NewServer(srv.Handler())
			b.Cleanup(ts.Close)
			client := tasks.NewClient(ts.URL, "")
			client.HTTP.Timeout = 10 * time.Minute // the server answers once FerretDB has stored every input
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				acc, err := client.Submit(ctx, tasks.JobRequest{Words: wire, Components: []string{"synonyms"}, Source: "bench"})
				if err != nil || acc.Words != n || len(acc.InputErrors) > 0 {
					b.Fatalf("submit: %v %+v", err, acc)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
		})
		b.Run(fmt.Sprintf("bson/%s/words=%d", shape.name, n), func(b *testing.B) {
			var size int
			b.ReportAllocs()
			for b.Loop() {
				size = 0
				for seq := 0; seq*pipeline.InputChunk < n; seq++ {
					end := min((seq+1)*pipeline.InputChunk, n)
					doc, err := bson.Marshal(store.JobInput{ID: fmt.Sprintf("job_x:%d", seq), JobID: "job_x", Seq: seq, Words: words[seq*pipeline.InputChunk : end]})
					if err != nil {
						b.Fatal(err)
					}
					size += len(doc)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "words/s")
			b.ReportMetric(float64(size)/1e6, "MB-encoded")
		})
	}
}
