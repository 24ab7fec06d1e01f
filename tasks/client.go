package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is the Go client of batchsynth's HTTP API (`batchsynth serve`), for a main app that would
// rather not share Redis and MongoDB with the fleet: it submits a job, reads it, cancels and retries it.
// The API is described in internal/web/openapi.yaml.

// Definition is one sense of a submitted word.
type Definition struct {
	PartOfSpeech string `json:"part_of_speech"`
	Text         string `json:"text"`
}

// Word is one submitted word: a headword Floridify already has (definitions empty: its stored definitions
// are used), or a headword with the definitions to enrich.
type Word struct {
	Word        string       `json:"word"`
	Language    string       `json:"language,omitempty"`
	Definitions []Definition `json:"definitions,omitempty"`
}

// MarshalJSON writes a bare headword as a JSON string, which the API accepts in place of an object.
func (w Word) MarshalJSON() ([]byte, error) {
	if w.Language == "" && len(w.Definitions) == 0 {
		return json.Marshal(w.Word)
	}
	type plain Word
	return json.Marshal(plain(w))
}

// UnmarshalJSON accepts a string or an object.
func (w *Word) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*w = Word{}
		return json.Unmarshal(b, &w.Word)
	}
	type plain Word
	return json.Unmarshal(b, (*plain)(w))
}

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	Words []Word `json:"words"`
	// Components are catalog names, or "default" or "all"; empty means default.
	Components []string `json:"components,omitempty"`
	Model      string   `json:"model,omitempty"`
	Mode       string   `json:"mode,omitempty"`     // packed (default), packed-word, per-component
	Priority   string   `json:"priority,omitempty"` // normal (default) or urgent (immediate calls, twice the price)
	Force      bool     `json:"force,omitempty"`    // regenerate components that are already present
	Source     string   `json:"source,omitempty"`   // free text shown with the job, e.g. "floridify:nightly"
	// IdempotencyKey, when set, makes a retried submission return the first one's job instead of a new job.
	IdempotencyKey string `json:"-"`
}

// InputError names a rejected word of a submission; the rest of the submission went on.
type InputError struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Word    string `json:"word,omitempty"`
	Message string `json:"message"`
}

// JobAccepted is the answer to a submission.
type JobAccepted struct {
	JobID       string       `json:"job_id"`
	Status      string       `json:"status"`
	Words       int          `json:"words"`
	Path        string       `json:"path"` // batch or immediate
	InputErrors []InputError `json:"input_errors"`
}

// Usage is billed tokens.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	CachedTokens int64 `json:"cached_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Job is a job as the API shows it.
type Job struct {
	ID           string       `json:"id"`
	Source       string       `json:"source"`
	Components   []string     `json:"components"`
	Mode         string       `json:"mode"`
	Model        string       `json:"model"`
	Force        bool         `json:"force"`
	Priority     string       `json:"priority,omitempty"`
	Status       string       `json:"status"`
	WordsTotal   int          `json:"words_total"`
	WordsMissing []string     `json:"words_missing"`
	InputErrors  []InputError `json:"input_errors"`
	Definitions  int          `json:"definitions"`
	CreatedAt    time.Time    `json:"created_at"`
	FinishedAt   *time.Time   `json:"finished_at,omitempty"`
}

// JobStatus is a job's progress: requests by state, the batches that carry them, tokens and dollars.
type JobStatus struct {
	Job Job `json:"job"`
	// Status is the job's status as the read saw it: done once Finished, even before the scheduler records it.
	Status       string         `json:"status"`
	States       map[string]int `json:"states"`
	Total        int            `json:"total"`
	Settled      int            `json:"settled"`
	Finished     bool           `json:"finished"`
	Batches      []string       `json:"batches"`
	Usage        Usage          `json:"usage"`
	CostUSD      float64        `json:"cost_usd"`
	ImmediateUSD float64        `json:"immediate_usd"`
	SavedUSD     float64        `json:"saved_usd"`
}

// CancelResult is the answer to a cancel.
type CancelResult struct {
	JobID             string `json:"job_id"`
	Status            string `json:"status"`
	CancelledRequests int    `json:"cancelled_requests"`
}

// RetryResult is the answer to a retry.
type RetryResult struct {
	JobID            string `json:"job_id"`
	RequeuedRequests int    `json:"requeued_requests"`
}

// APIError is an error answer of the API. Field names the offending request field, when there is one.
type APIError struct {
	StatusCode int    `json:"-"`
	Code       string `json:"code"`
	Field      string `json:"field,omitempty"`
	Message    string `json:"message"`
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("batchsynth API %d %s: %s: %s", e.StatusCode, e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("batchsynth API %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// IsNotFound reports an API answer of 404 (unknown job or batch id).
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// Client talks to one batchsynth web process (or a load balancer in front of several).
type Client struct {
	BaseURL string // e.g. http://batchsynth-web:8080
	Token   string // BATCHSYNTH_API_TOKEN
	HTTP    *http.Client
}

// NewClient returns a client with a 60 s request timeout.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Submit creates a job.
func (c *Client) Submit(ctx context.Context, req JobRequest) (*JobAccepted, error) {
	var out JobAccepted
	hdr := http.Header{}
	if req.IdempotencyKey != "" {
		hdr.Set("Idempotency-Key", req.IdempotencyKey)
	}
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs", req, hdr, &out)
}

// Job reads a job's progress.
func (c *Client) Job(ctx context.Context, id string) (*JobStatus, error) {
	var out JobStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil, &out)
}

// Cancel stops a job: its pending requests are cancelled and batches that carry only its requests are
// cancelled at OpenAI (what completed in them is still applied).
func (c *Client) Cancel(ctx context.Context, id string) (*CancelResult, error) {
	var out CancelResult
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, &out)
}

// Retry puts a job's dead and cancelled requests back to pending.
func (c *Client) Retry(ctx context.Context, id string) (*RetryResult, error) {
	var out RetryResult
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/retry", nil, nil, &out)
}

// Wait polls a job every interval until it is finished or ctx ends.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (*JobStatus, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := c.Job(ctx, id)
		if err != nil || st.Finished {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Client) do(ctx context.Context, method, path string, in any, hdr http.Header, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("error encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("error building request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("error calling batchsynth %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("error reading batchsynth's answer to %s %s: %w", method, path, err)
	}
	if res.StatusCode >= 300 {
		var env struct {
			Error *APIError `json:"error"`
		}
		if json.Unmarshal(raw, &env) != nil || env.Error == nil {
			return &APIError{StatusCode: res.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(raw))}
		}
		env.Error.StatusCode = res.StatusCode
		return env.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("error decoding batchsynth's answer to %s %s: %w", method, path, err)
	}
	return nil
}
