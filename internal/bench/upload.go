package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/floridify/batchsynth/internal/openaibatch"
)

// UploadSDK uploads through openai-go's own Files.New, which builds the whole multipart body in memory
// before sending it: the path openaibatch.Client.Upload replaced with a streamed body. The upload
// benchmarks run it side by side with Client.Upload so the difference stays measured.
func UploadSDK(ctx context.Context, c *openaibatch.Client, name string, r io.Reader) (string, error) {
	f, err := c.OpenAI().Files.New(ctx, openai.FileNewParams{File: openai.File(r, name, "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		return "", fmt.Errorf("error uploading %s: %w", name, err)
	}
	return f.ID, nil
}

// UploadBenchmarks is the body the upload benchmarks share (the emulator in the benchmark's process, or in a
// child process): for each size, a file of that many corpus lines uploaded through c, as "sdk/lines=N"
// (UploadSDK) and "streamed/lines=N" (Client.Upload), each file deleted after its upload. It reports the
// peak heap and the rate.
func UploadBenchmarks(b *testing.B, c *openaibatch.Client, sizes []int) {
	corpus := DefaultCorpus(b)
	dir := b.TempDir()
	uploads := map[string]func(context.Context, string, io.Reader) (string, error){
		"sdk":      func(ctx context.Context, name string, r io.Reader) (string, error) { return UploadSDK(ctx, c, name, r) },
		"streamed": c.Upload,
	}
	for _, n := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("input-%d.jsonl", n))
		size := WriteInput(b, path, corpus.Lines(n))
		for _, how := range []string{"sdk", "streamed"} {
			upload := uploads[how]
			b.Run(fmt.Sprintf("%s/lines=%d", how, n), func(b *testing.B) {
				ctx := context.Background()
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				b.ReportAllocs()
				h := StartHeapPeak()
				for b.Loop() {
					if _, err := f.Seek(0, io.SeekStart); err != nil {
						b.Fatal(err)
					}
					id, err := upload(ctx, "bench.jsonl", f)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.OpenAI().Files.Delete(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
				h.Report(b)
				ReportRate(b, n, size)
			})
		}
	}
}
