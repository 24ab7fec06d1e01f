package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/openaibatch"
)

// BenchmarkUploadOutOfProcess uploads a rendered input file to the Batch API emulator running in a child
// process (this test binary in RoleEmulator), so that the heap measured here is the client's alone:
// "sdk" is UploadSDK (openai-go's Files.New, which buffers the whole multipart body), "streamed" is
// openaibatch.Client.Upload (the file streamed into the body). Each file is deleted after its upload.
func BenchmarkUploadOutOfProcess(b *testing.B) {
	corpus := DefaultCorpus(b)
	child := StartChild(b, RoleEmulator)
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-bench", BaseURL: "http://" + child.Ready + "/v1/", MaxRetries: 2, Timeout: 10 * time.Minute})
	dir := b.TempDir()
	sizes := []int{5_000, 50_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("input-%d.jsonl", n))
		size := WriteInput(b, path, corpus.Lines(n))
		for _, how := range []string{"sdk", "streamed"} {
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
					var id string
					if how == "sdk" {
						id, err = UploadSDK(ctx, c, "bench.jsonl", f)
					} else {
						id, err = c.Upload(ctx, "bench.jsonl", f)
					}
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
