package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

// Benchmarks of issue 6. docs/benchmarks.md ("Performance") has the figures, the machine and the commands;
// CI runs them once each with -short (smaller sizes) so that they cannot rot:
//
//	go test -run='^$' -bench=. -benchtime=1x -short ./internal/openaibatch/ ./internal/synthesis/ ./internal/pipeline/

// lineSizes are the file sizes of issue 6; -short keeps the small one.
func lineSizes() []int {
	if testing.Short() {
		return []int{5_000}
	}
	return []int{5_000, 50_000}
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkBuild renders an input file and uploads it, as the builder does for one batch (Deps.upload: the
// claimed requests' bodies through openaibatch.AppendLine and a 1 MiB bufio.Writer into a temp file, then
// openaibatch.Client.Upload to the Batch API emulator over HTTP). Only the MongoDB cursor is left out (see
// BenchmarkJob for the whole step on a real server): bodies are real ones (bench.DefaultCorpus: the shipped
// 1,000 words, packed, ten components, about 3.4 KB a body) cycled with fresh custom_ids. "sdk" uploads
// through openai-go's buffered Files.New (bench.UploadSDK), "streamed" with openaibatch.Client.Upload. The emulator runs in this
// process and keeps a copy of each file until it is deleted (after each upload), so the heap figures count
// the server's copy too: see internal/bench's BenchmarkUploadOutOfProcess for the client's heap alone.
func BenchmarkBuild(b *testing.B) {
	corpus := bench.DefaultCorpus(b)
	_, base := testenv.Emulator(b, emulator.Config{})
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-bench", BaseURL: base, MaxRetries: 2, Timeout: 10 * time.Minute})
	uploads := []struct {
		name   string
		upload func(context.Context, *openaibatch.Client, string, io.Reader) (string, error)
	}{
		{"sdk", bench.UploadSDK},
		{"streamed", func(ctx context.Context, c *openaibatch.Client, name string, r io.Reader) (string, error) {
			return c.Upload(ctx, name, r)
		}},
	}
	for _, n := range lineSizes() {
		lines := corpus.Lines(n)
		for _, u := range uploads {
			b.Run(fmt.Sprintf("%s/lines=%d", u.name, n), func(b *testing.B) {
				ctx := context.Background()
				dir := b.TempDir()
				var size int64
				b.ReportAllocs()
				h := bench.StartHeapPeak()
				for b.Loop() {
					f, err := os.CreateTemp(dir, "batchsynth-*.jsonl")
					if err != nil {
						b.Fatal(err)
					}
					bw := bufio.NewWriterSize(f, 1<<20)
					var line []byte
					size = 0
					for _, l := range lines {
						line = openaibatch.AppendLine(line[:0], l.CustomID, l.Body)
						k, err := bw.Write(line)
						if err != nil {
							b.Fatal(err)
						}
						size += int64(k)
					}
					if err := bw.Flush(); err != nil {
						b.Fatal(err)
					}
					if _, err := f.Seek(0, io.SeekStart); err != nil {
						b.Fatal(err)
					}
					id, err := u.upload(ctx, c, "bench.jsonl", f)
					if err != nil {
						b.Fatal(err)
					}
					f.Close()
					os.Remove(f.Name())
					if _, err := c.OpenAI().Files.Delete(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
				h.Report(b)
				bench.ReportRate(b, n, size)
			})
		}
	}
}

// BenchmarkApplyParse parses and validates result lines streamed from a file, the CPU part of apply: the
// emulator's output for the corpus (one line per request, schema-valid synthetic content), read in chunks of
// pipeline.ApplyChunk lines, each line's custom_id parsed and joined to its request (a map here, the
// requests collection in apply) and its content validated.
//
//   - apply: as applyFile and applyChunk do it: Reader.Chunks (a chunk of lines and ParseLines, one ahead) and
//     synthesis.DecodeAll (both on every core).
//   - serial: Reader.Next and synthesis.Decode, one line after the other, for the ratio.
func BenchmarkApplyParse(b *testing.B) {
	corpus := bench.DefaultCorpus(b)
	dir := b.TempDir()
	for _, n := range lineSizes() {
		lines := corpus.Lines(n)
		byID := bench.ByCustomID(lines)
		in, out := filepath.Join(dir, fmt.Sprintf("in-%d.jsonl", n)), filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", n))
		bench.WriteInput(b, in, lines)
		size := bench.EmulatorOutput(b, in, out)
		answer := func(r openaibatch.Result) synthesis.Answer {
			if !r.OK {
				b.Fatalf("%s: %s", r.CustomID, r.Reason)
			}
			if _, _, err := synthesis.ParseCustomID(r.CustomID); err != nil {
				b.Fatal(err)
			}
			req := byID[r.CustomID]
			return synthesis.Answer{Kind: req.Kind, Word: req.Word, NDefs: req.NDefs, Components: req.Components, Content: r.Content}
		}
		check := func(answers []synthesis.Answer) {
			for _, a := range answers {
				if a.Err != nil {
					b.Fatal(a.Err)
				}
			}
		}
		b.Run(fmt.Sprintf("apply/lines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			h := bench.StartHeapPeak()
			for b.Loop() {
				f, err := os.Open(out)
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for c, err := range openaibatch.NewReader(f).Chunks(pipeline.ApplyChunk) {
					if err != nil {
						b.Fatal(err)
					}
					answers := make([]synthesis.Answer, len(c.Results))
					for i, r := range c.Results {
						if c.Errs[i] != nil {
							b.Fatal(c.Errs[i])
						}
						answers[i] = answer(r)
					}
					synthesis.DecodeAll(answers)
					check(answers)
					got += len(answers)
				}
				f.Close()
				if got != n {
					b.Fatalf("%d lines, want %d", got, n)
				}
			}
			h.Report(b)
			bench.ReportRate(b, n, size)
		})
		b.Run(fmt.Sprintf("serial/lines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			h := bench.StartHeapPeak()
			for b.Loop() {
				got := bench.ReadResults(b, out, func(r openaibatch.Result) {
					a := answer(r)
					a.Parsed, a.Err = synthesis.Decode(a.Kind, a.Word, a.NDefs, a.Components, a.Content)
					check([]synthesis.Answer{a})
				})
				if got != n {
					b.Fatalf("%d lines, want %d", got, n)
				}
			}
			h.Report(b)
			bench.ReportRate(b, n, size)
		})
	}
}

// BenchmarkJob drives a job through every step (submit, enqueue, build, poll, apply) on the test MongoDB
// wire server (embedded FerretDB unless MONGODB_URI names another; BATCHSYNTH_TEST_FERRETDB_BACKEND=postgresql
// for its PostgreSQL backend), real redis-server and the emulator over HTTP, and counts every MongoDB command
// with the driver's command monitor. Words: 200 from the shipped sample (packed, ten components), 20 with
// -short (one run only), BATCHSYNTH_BENCH_WORDS to change. On FerretDB with SQLite, maxbulk=50 is Store.MaxBulk as
// detected and maxbulk=99 the largest that backend takes; with PostgreSQL, whose pool a few commands in flight
// share, the one run is at bench.FerretDBPostgresMaxBulk. Each run rebuilds its write calls from its commands
// (bench.GroupBulk), which gives the count with MongoDB's MaxBulkDefault (5000); two runs must rebuild the
// same calls.
func BenchmarkJob(b *testing.B) {
	words := envInt("BATCHSYNTH_BENCH_WORDS", 200)
	if testing.Short() {
		words = 20
	}
	sub := pipeline.Submission{Source: "bench", Words: bench.Words(b, words), Components: bench.Components, Mode: synthesis.ModePacked}
	tallies := map[int]bench.Tally{}
	maxBulks := []int{store.FerretDBMaxBulk, 99}
	if bench.FerretDBMaxBulk() == bench.FerretDBPostgresMaxBulk {
		maxBulks = []int{bench.FerretDBPostgresMaxBulk}
	}
	if testing.Short() {
		maxBulks = maxBulks[:1]
	}
	for _, maxBulk := range maxBulks {
		b.Run(fmt.Sprintf("maxbulk=%d", maxBulk), func(b *testing.B) {
			var run *bench.Run
			for range b.N {
				b.StopTimer()
				s := bench.NewStack(b, bench.StackOptions{MaxBulk: maxBulk})
				b.StartTimer()
				run = s.RunJob(b, sub)
			}
			b.Logf("\n%s", bench.FormatSteps(run, maxBulk))
			apply := bench.NewTally(run.Step("apply").Commands, maxBulk)
			tallies[maxBulk] = apply
			var all int
			for _, st := range run.Steps {
				all += len(st.Commands)
			}
			b.ReportMetric(float64(run.Requests), "requests")
			b.ReportMetric(bench.PerThousand(apply.Total, run.Requests), "apply-cmds/1k-req")
			b.ReportMetric(bench.PerThousand(apply.Bulk, run.Requests), "apply-writes/1k-req")
			b.ReportMetric(bench.PerThousand(apply.At(store.MaxBulkDefault), run.Requests), "apply-cmds-at-5000/1k-req")
			b.ReportMetric(bench.PerThousand(all, run.Requests), "all-cmds/1k-req")
			b.ReportMetric(float64(run.Requests)/run.Step("apply").Duration.Seconds(), "apply-req/s")
		})
	}
	if a, c := tallies[store.FerretDBMaxBulk], tallies[99]; len(a.Calls) > 0 && len(c.Calls) > 0 {
		if !bench.SameCalls(a, c) {
			b.Errorf("maxbulk 50 and 99 rebuilt different write calls:\n%v\n%v", a.CallSignature(), c.CallSignature())
		} else {
			b.Logf("apply: the same %d write calls rebuilt from both runs; at MaxBulk 5000: %d commands", len(a.Calls), a.At(store.MaxBulkDefault))
		}
	}
}
