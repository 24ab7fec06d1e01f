package bench

import (
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/openaibatch"
)

// BenchmarkUploadOutOfProcess uploads a rendered input file to the Batch API emulator running in a child
// process (this test binary in RoleEmulator), so that the heap measured here is the client's alone:
// "sdk" is UploadSDK (openai-go's Files.New, which buffers the whole multipart body), "streamed" is
// openaibatch.Client.Upload (the file streamed into the body). Each file is deleted after its upload.
func BenchmarkUploadOutOfProcess(b *testing.B) {
	child := StartChild(b, RoleEmulator)
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-bench", BaseURL: "http://" + child.Ready + "/v1/", MaxRetries: 2, Timeout: 10 * time.Minute})
	sizes := []int{5_000, 50_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	UploadBenchmarks(b, c, sizes)
}
