package openaibatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// MetadataBatchID is the metadata key carrying our synthesis_batches id on every OpenAI batch.
const MetadataBatchID = "batchsynth_batch_id"

// Client wraps openai-go for the calls batchsynth makes.
type Client struct {
	oa openai.Client
}

// Options configure New.
type Options struct {
	APIKey     string
	BaseURL    string // e.g. http://127.0.0.1:8081/v1/ (emulator); empty: OpenAI
	HTTPClient *http.Client
	MaxRetries int           // for idempotent calls; create is never retried by the client
	Timeout    time.Duration // per attempt
}

// New builds a client.
func New(o Options) *Client {
	opts := []option.RequestOption{option.WithAPIKey(o.APIKey), option.WithMaxRetries(o.MaxRetries)}
	if o.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(o.BaseURL))
	}
	if o.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(o.HTTPClient))
	}
	if o.Timeout > 0 {
		opts = append(opts, option.WithRequestTimeout(o.Timeout))
	}
	return &Client{oa: openai.NewClient(opts...)}
}

// OpenAI exposes the underlying client (immediate-mode chat completions).
func (c *Client) OpenAI() *openai.Client { return &c.oa }

// FindFile looks for an uploaded batch file by name (newest first), so a retried build reuses an upload
// whose id was never recorded.
func (c *Client) FindFile(ctx context.Context, name string) (string, bool, error) {
	iter := c.oa.Files.ListAutoPaging(ctx, openai.FileListParams{Purpose: openai.String("batch"), Limit: openai.Int(1000)})
	n := 0
	for iter.Next() {
		f := iter.Current()
		if f.Filename == name {
			return f.ID, true, nil
		}
		if n++; n >= 5000 {
			break
		}
	}
	if err := iter.Err(); err != nil {
		return "", false, fmt.Errorf("error listing files: %w", err)
	}
	return "", false, nil
}

// Create creates a batch exactly once per call: the client's retries are off, because a retried POST whose
// first response was lost would create a second batch. Callers reconcile with FindByMetadata after an
// unknown outcome.
func (c *Client) Create(ctx context.Context, inputFileID, ourID, model string) (*openai.Batch, error) {
	b, err := c.oa.Batches.New(ctx, openai.BatchNewParams{
		InputFileID:      inputFileID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         shared.Metadata{MetadataBatchID: ourID, "model": model},
	}, option.WithMaxRetries(0))
	if err != nil {
		return nil, fmt.Errorf("error creating batch for %s: %w", ourID, err)
	}
	return b, nil
}

// FindByMetadata lists recent batches (newest first) back to since, looking for ours.
func (c *Client) FindByMetadata(ctx context.Context, ourID string, since time.Time) (*openai.Batch, error) {
	iter := c.oa.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(100)})
	cutoff := since.Add(-10 * time.Minute).Unix()
	for iter.Next() {
		b := iter.Current()
		if b.Metadata[MetadataBatchID] == ourID {
			return &b, nil
		}
		if b.CreatedAt < cutoff {
			break
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("error listing batches: %w", err)
	}
	return nil, nil
}

// Get retrieves a batch.
func (c *Client) Get(ctx context.Context, id string) (*openai.Batch, error) {
	b, err := c.oa.Batches.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("error retrieving batch %s: %w", id, err)
	}
	return b, nil
}

// Cancel asks OpenAI to cancel a batch.
func (c *Client) Cancel(ctx context.Context, id string) (*openai.Batch, error) {
	b, err := c.oa.Batches.Cancel(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("error cancelling batch %s: %w", id, err)
	}
	return b, nil
}

// Content opens a file's content; the caller closes it.
func (c *Client) Content(ctx context.Context, fileID string) (io.ReadCloser, error) {
	resp, err := c.oa.Files.Content(ctx, fileID)
	if err != nil {
		return nil, fmt.Errorf("error downloading file %s: %w", fileID, err)
	}
	return resp.Body, nil
}

// IsRejected reports whether err is a definitive answer: the server refused the request (4xx other than
// 408, 409 and 429), so nothing was created and repeating it unchanged will not help.
func IsRejected(err error) bool {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	switch s := apiErr.StatusCode; {
	case s == 408 || s == 409 || s == 429:
		return false
	case s >= 400 && s < 500:
		return true
	}
	return false
}

// IsFileNotReady reports OpenAI's transient "Cannot find file" after a fresh upload (curator#116).
func IsFileNotReady(err error) bool {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.StatusCode == 400 && apiErr.Param == "file_id"
}
