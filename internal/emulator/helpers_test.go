package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/floridify/batchsynth/internal/emulator"
)

const testModel = "gpt-4o-mini"

// testBundle is one emulator behind a real HTTP server and a real openai-go client.
type testBundle struct {
	srv    *emulator.Server
	url    string
	client openai.Client
	clock  *fakeClock // nil unless the test asked for one
}

// setup starts an emulator for cfg. The client does not retry unless opts say so.
func setup(t *testing.T, cfg emulator.Config, opts ...option.RequestOption) *testBundle {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv := emulator.New(cfg)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	base := []option.RequestOption{
		option.WithBaseURL(hs.URL + "/v1/"),
		option.WithAPIKey("sk-emulator"),
		option.WithMaxRetries(0),
	}
	return &testBundle{srv: srv, url: hs.URL, client: openai.NewClient(append(base, opts...)...)}
}

// setupClock is setup with a hand-driven clock.
func setupClock(t *testing.T, cfg emulator.Config, opts ...option.RequestOption) *testBundle {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now = clock.Now
	tb := setup(t, cfg, opts...)
	tb.clock = clock
	return tb
}

// testLogger sends the emulator's log lines to the test output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// enrichmentSchema is a strict schema with nested objects, arrays and enums,
// shaped like batchsynth's packed requests.
func enrichmentSchema() map[string]any {
	str := map[string]any{"type": "string"}
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"definitions", "cefr_level", "register", "frequency_band", "etymology"},
		"properties": map[string]any{
			"cefr_level":     map[string]any{"type": "string", "enum": []any{"A1", "A2", "B1", "B2", "C1", "C2"}},
			"register":       map[string]any{"type": []any{"string", "null"}, "enum": []any{"formal", "neutral", "informal", nil}},
			"frequency_band": map[string]any{"type": "integer", "minimum": 1, "maximum": 5},
			"etymology": map[string]any{"anyOf": []any{
				map[string]any{"type": "null"},
				map[string]any{
					"type": "object", "additionalProperties": false,
					"required":   []any{"origin", "first_attested"},
					"properties": map[string]any{"origin": str, "first_attested": map[string]any{"type": "integer", "minimum": 800, "maximum": 2025}},
				},
			}},
			"definitions": map[string]any{
				"type": "array", "minItems": 1, "maxItems": 4,
				"items": map[string]any{
					"type": "object", "additionalProperties": false,
					"required": []any{"definition_id", "synonyms", "examples", "domain", "usage_note"},
					"properties": map[string]any{
						"definition_id": str,
						"synonyms":      map[string]any{"type": "array", "items": str},
						"examples": map[string]any{"type": "array", "minItems": 2, "maxItems": 2, "items": map[string]any{
							"type": "object", "additionalProperties": false, "required": []any{"sentence", "difficulty"},
							"properties": map[string]any{
								"sentence":   str,
								"difficulty": map[string]any{"type": "string", "enum": []any{"easy", "medium", "hard"}},
							},
						}},
						"domain":     map[string]any{"type": "string", "enum": []any{"general", "finance", "geography", "law"}},
						"usage_note": map[string]any{"type": []any{"string", "null"}},
					},
				},
			},
		},
	}
}

// chatBody builds a chat-completions request body with the real SDK types.
func chatBody(model, word string, schema map[string]any) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model: model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You enrich dictionary entries. Answer with JSON only."),
			openai.UserMessage("word: " + word + "\ncomponents: synonyms, examples, cefr_level"),
		},
	}
	if schema != nil {
		p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
				Name: "enrichment", Strict: openai.Bool(true), Schema: schema,
			}},
		}
	}
	return p
}

// batchLine is one input line; body is any JSON-marshalable value.
func batchLine(customID string, body any) map[string]any {
	return map[string]any{"custom_id": customID, "method": "POST", "url": "/v1/chat/completions", "body": body}
}

func jsonl(t *testing.T, lines ...any) []byte {
	t.Helper()
	data, err := marshalLines(lines)
	if err != nil {
		t.Fatalf("error marshalling lines: %v", err)
	}
	return data
}

// marshalLines renders lines as JSONL.
func marshalLines(lines []any) ([]byte, error) {
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// wordLines returns n structured-output lines "id-0".."id-(n-1)".
func wordLines(t *testing.T, n int, model string) []byte {
	t.Helper()
	words := []string{"bank", "light", "run", "set", "bear", "fair", "spring", "match"}
	lines := make([]any, n)
	for i := range lines {
		lines[i] = batchLine(customID(i), chatBody(model, words[i%len(words)], enrichmentSchema()))
	}
	return jsonl(t, lines...)
}

// customID names line i; the names sort in line order.
func customID(i int) string { return fmt.Sprintf("req-%05d", i) }

func (tb *testBundle) upload(t *testing.T, data []byte) string {
	t.Helper()
	f, err := tb.client.Files.New(context.Background(), openai.FileNewParams{
		File:    openai.File(bytes.NewReader(data), "batch.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatalf("error uploading file: %v", err)
	}
	return f.ID
}

func (tb *testBundle) create(t *testing.T, fileID string, md map[string]string) *openai.Batch {
	t.Helper()
	b, err := tb.client.Batches.New(context.Background(), openai.BatchNewParams{
		InputFileID:      fileID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         shared.Metadata(md),
	})
	if err != nil {
		t.Fatalf("error creating batch: %v", err)
	}
	return b
}

// submit uploads data and creates a batch for it.
func (tb *testBundle) submit(t *testing.T, data []byte) *openai.Batch {
	t.Helper()
	return tb.create(t, tb.upload(t, data), nil)
}

func (tb *testBundle) get(t *testing.T, id string) *openai.Batch {
	t.Helper()
	b, err := tb.client.Batches.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("error getting batch %s: %v", id, err)
	}
	return b
}

// wait polls until the batch is terminal (real time, for instant configs).
func (tb *testBundle) wait(t *testing.T, id string) *openai.Batch {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := tb.get(t, id)
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s after 5s", id, b.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resultLine is a line of an output or error file.
type resultLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw map[string]json.RawMessage
}

func (tb *testBundle) download(t *testing.T, fileID string) []resultLine {
	t.Helper()
	if fileID == "" {
		return nil
	}
	res, err := tb.client.Files.Content(context.Background(), fileID)
	if err != nil {
		t.Fatalf("error downloading %s: %v", fileID, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("error reading %s: %v", fileID, err)
	}
	var out []resultLine
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var l resultLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("output line is not JSON: %v: %s", err, line)
		}
		if err := json.Unmarshal(line, &l.raw); err != nil {
			t.Fatalf("output line is not an object: %v", err)
		}
		out = append(out, l)
	}
	return out
}

// completion decodes a line's response body with the SDK's own type.
func completion(t *testing.T, l resultLine) openai.ChatCompletion {
	t.Helper()
	var cc openai.ChatCompletion
	if err := json.Unmarshal(l.Response.Body, &cc); err != nil {
		t.Fatalf("error decoding chat.completion of %s: %v", l.CustomID, err)
	}
	return cc
}

func record(t *testing.T, srv *emulator.Server, id string) emulator.BatchRecord {
	t.Helper()
	for _, r := range srv.Batches() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("batch %s not in Batches()", id)
	return emulator.BatchRecord{}
}

func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want *openai.Error, got %T: %v", err, err)
	}
	return apiErr
}
