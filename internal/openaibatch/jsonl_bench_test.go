package openaibatch_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/testenv"
)

// benchSizes are the file sizes of issue 6 (5,000 and 50,000 lines); -short keeps the small one for CI.
func benchSizes() []int {
	if testing.Short() {
		return []int{5_000}
	}
	return []int{5_000, 50_000}
}

// BenchmarkAppendLine renders input lines the way Deps.RenderBatch does: AppendLine into one reused buffer,
// through a 1 MiB bufio.Writer, into a temp file. Bodies are real (bench.DefaultCorpus: the shipped 1,000
// words, packed, ten components, about 3.4 KB a body), cycled with fresh custom_ids.
func BenchmarkAppendLine(b *testing.B) {
	corpus := bench.DefaultCorpus(b)
	for _, n := range benchSizes() {
		lines := corpus.Lines(n)
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "input.jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var size int64
			b.ReportAllocs()
			h := bench.StartHeapPeak()
			for b.Loop() {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
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
			}
			h.Report(b)
			bench.ReportRate(b, n, size)
		})
	}
}

// BenchmarkUpload uploads a rendered input file to the Batch API emulator over HTTP (httptest, in this
// process) with the real openai-go client: "sdk" is bench.UploadSDK (the SDK's Files.New,
// which builds the whole multipart body in memory), "streamed" is openaibatch.Client.Upload (the file
// streamed into the body). The emulator keeps what it is sent in memory (a []byte of the file's size, grown by
// io.ReadAll), so in this process the peak heap counts the server's copy too; each file is deleted after its
// upload. internal/bench's BenchmarkUploadOutOfProcess runs the emulator in a child process to leave the
// client's heap alone.
func BenchmarkUpload(b *testing.B) {
	_, base := testenv.Emulator(b, emulator.Config{})
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-bench", BaseURL: base, MaxRetries: 2, Timeout: 10 * time.Minute})
	bench.UploadBenchmarks(b, c, benchSizes())
}

// BenchmarkReader parses result lines streamed from a file (openaibatch.Reader and ParseLine, no content
// validation): the emulator's output for the corpus's lines, one per request.
func BenchmarkReader(b *testing.B) {
	corpus := bench.DefaultCorpus(b)
	dir := b.TempDir()
	for _, n := range benchSizes() {
		in, out := filepath.Join(dir, fmt.Sprintf("input-%d.jsonl", n)), filepath.Join(dir, fmt.Sprintf("output-%d.jsonl", n))
		bench.WriteInput(b, in, corpus.Lines(n))
		size := bench.EmulatorOutput(b, in, out)
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			h := bench.StartHeapPeak()
			for b.Loop() {
				got := bench.ReadResults(b, out, func(r openaibatch.Result) {
					if !r.OK {
						b.Fatalf("%s: %q", r.CustomID, r.Reason)
					}
				})
				if got != n {
					b.Fatalf("read %d lines, want %d", got, n)
				}
			}
			h.Report(b)
			bench.ReportRate(b, n, size)
		})
	}
}
