package bench

import (
	"context"
	"fmt"
	"io"

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
