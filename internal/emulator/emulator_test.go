package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/floridify/batchsynth/internal/emulator"
)

func TestEndToEndStructuredOutput(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 7})
	ctx := context.Background()

	const n = 12
	fileID := tb.upload(t, wordLines(t, n, testModel))
	created := tb.create(t, fileID, map[string]string{"synthesis_batch": "sb-1"})
	if created.Status != openai.BatchStatusValidating {
		t.Fatalf("create returned status %s, want validating", created.Status)
	}
	if created.ExpiresAt != created.CreatedAt+86400 {
		t.Errorf("expires_at = %d, want created_at+86400 = %d", created.ExpiresAt, created.CreatedAt+86400)
	}

	b := tb.wait(t, created.ID)
	if b.Status != openai.BatchStatusCompleted {
		t.Fatalf("status = %s, want completed (errors: %s)", b.Status, b.Errors.RawJSON())
	}
	if b.Model != testModel || b.Metadata["synthesis_batch"] != "sb-1" || b.InputFileID != fileID {
		t.Errorf("batch model/metadata/input = %q/%v/%q", b.Model, b.Metadata, b.InputFileID)
	}
	if b.RequestCounts.Total != n || b.RequestCounts.Completed != n || b.RequestCounts.Failed != 0 {
		t.Errorf("request_counts = %+v, want %d/%d/0", b.RequestCounts.RawJSON(), n, n)
	}
	if b.ErrorFileID != "" || b.JSON.ErrorFileID.Valid() {
		t.Errorf("error_file_id = %q, want none", b.ErrorFileID)
	}
	for name, ts := range map[string]int64{"in_progress_at": b.InProgressAt, "finalizing_at": b.FinalizingAt, "completed_at": b.CompletedAt} {
		if ts < b.CreatedAt {
			t.Errorf("%s = %d, want >= created_at %d", name, ts, b.CreatedAt)
		}
	}

	out, err := tb.client.Files.Get(ctx, b.OutputFileID)
	if err != nil {
		t.Fatalf("error getting output file: %v", err)
	}
	if out.Purpose != openai.FileObjectPurposeBatchOutput || !strings.HasPrefix(out.ID, "file-") {
		t.Errorf("output file = %s purpose %s", out.ID, out.Purpose)
	}

	lines := tb.download(t, b.OutputFileID)
	if len(lines) != n {
		t.Fatalf("output has %d lines, want %d", len(lines), n)
	}
	rec := record(t, tb.srv, b.ID)
	billed := map[string]emulator.LineUsage{}
	for _, l := range rec.Succeeded() {
		billed[l.CustomID] = l.Usage
	}
	var prompt, completionTokens int64
	schema := enrichmentSchema()
	for _, l := range lines {
		if !strings.HasPrefix(l.ID, "batch_req_") || l.Response == nil || l.Response.StatusCode != 200 ||
			!strings.HasPrefix(l.Response.RequestID, "req_") || string(l.raw["error"]) != "null" {
			t.Fatalf("bad output line shape: %+v", l.raw)
		}
		cc := completion(t, l)
		if cc.Object != "chat.completion" || cc.Model != testModel || cc.SystemFingerprint != emulator.SystemFingerprint ||
			!strings.HasPrefix(cc.ID, "chatcmpl-") || len(cc.Choices) != 1 || cc.Choices[0].FinishReason != "stop" {
			t.Fatalf("bad chat.completion: %s", cc.RawJSON())
		}
		content := cc.Choices[0].Message.Content
		if err := emulator.ValidateAgainstSchema(schema, []byte(content)); err != nil {
			t.Errorf("content of %s is not valid for its schema: %v\n%s", l.CustomID, err, content)
		}
		if !strings.Contains(content, "synthetic") {
			t.Errorf("content of %s does not read as synthetic: %s", l.CustomID, content)
		}
		u := cc.Usage
		if u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.CompletionTokens != int64((len(content)+3)/4) {
			t.Errorf("usage of %s = %s for %d content bytes", l.CustomID, u.RawJSON(), len(content))
		}
		if got := billed[l.CustomID]; got.InputTokens != u.PromptTokens || got.OutputTokens != u.CompletionTokens {
			t.Errorf("Batches() billed %s %+v, line usage %s", l.CustomID, got, u.RawJSON())
		}
		prompt += u.PromptTokens
		completionTokens += u.CompletionTokens
	}
	if b.Usage.InputTokens != prompt || b.Usage.OutputTokens != completionTokens || b.Usage.TotalTokens != prompt+completionTokens {
		t.Errorf("batch usage %s, want input %d output %d", b.Usage.RawJSON(), prompt, completionTokens)
	}
	if !b.Usage.JSON.InputTokensDetails.Valid() || !b.Usage.OutputTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Errorf("usage details missing: %s", b.Usage.RawJSON())
	}
	if rec.Usage.InputTokens != prompt || rec.RequestCounts.Completed != n || rec.Outcomes[emulator.OutcomeSuccess] != n {
		t.Errorf("record usage/counts/outcomes = %+v %+v %v", rec.Usage, rec.RequestCounts, rec.Outcomes)
	}
	if rec.EstimatedInputTokens != prompt {
		t.Errorf("estimated input tokens %d, billed %d", rec.EstimatedInputTokens, prompt)
	}
}

func TestPromptTokenEstimate(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	body := chatBody(testModel, "bank", enrichmentSchema())
	b := tb.wait(t, tb.submit(t, jsonl(t, batchLine("only", body))).ID)

	msgs, err := json.Marshal(body.Messages)
	if err != nil {
		t.Fatal(err)
	}
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, msgs); err != nil {
		t.Fatal(err)
	}
	if want := int64((compacted.Len() + 3) / 4); b.Usage.InputTokens != want {
		t.Errorf("input tokens = %d, want ceil(%d/4) = %d", b.Usage.InputTokens, compacted.Len(), want)
	}
}

func TestContentIsDeterministic(t *testing.T) {
	t.Parallel()
	contents := func(seed int64) map[string]string {
		tb := setup(t, emulator.Config{Seed: seed})
		b := tb.wait(t, tb.submit(t, wordLines(t, 4, testModel)).ID)
		out := map[string]string{}
		for _, l := range tb.download(t, b.OutputFileID) {
			out[l.CustomID] = completion(t, l).Choices[0].Message.Content
		}
		return out
	}
	a, again, other := contents(1), contents(1), contents(2)
	for id, c := range a {
		if again[id] != c {
			t.Errorf("seed 1 gave two contents for %s:\n%s\n%s", id, c, again[id])
		}
	}
	same := 0
	for id, c := range a {
		if other[id] == c {
			same++
		}
	}
	if same == len(a) {
		t.Errorf("seeds 1 and 2 gave the same content for every line")
	}
}

func TestWordFromPrompt(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	schema := map[string]any{
		"type": "object", "additionalProperties": false, "required": []any{"examples"},
		"properties": map[string]any{"examples": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}},
	}
	b := tb.wait(t, tb.submit(t, jsonl(t, batchLine("w", chatBody(testModel, "serendipity", schema)))).ID)
	content := completion(t, tb.download(t, b.OutputFileID)[0]).Choices[0].Message.Content
	if !strings.Contains(content, `synthetic examples 1 for \"serendipity\"`) {
		t.Errorf("content does not name the word: %s", content)
	}
}

func TestChatCompletionsSync(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 3})
	ctx := context.Background()

	var httpRes *http.Response
	cc, err := tb.client.Chat.Completions.New(ctx, chatBody("gpt-5-mini", "bank", enrichmentSchema()), option.WithResponseInto(&httpRes))
	if err != nil {
		t.Fatalf("error calling chat completions: %v", err)
	}
	if httpRes.Header.Get(emulator.HeaderSynthetic) != "synthetic" {
		t.Errorf("header %s = %q", emulator.HeaderSynthetic, httpRes.Header.Get(emulator.HeaderSynthetic))
	}
	if cc.Model != "gpt-5-mini" || cc.SystemFingerprint != emulator.SystemFingerprint || cc.Choices[0].Message.Refusal != "" {
		t.Errorf("bad completion: %s", cc.RawJSON())
	}
	if err := emulator.ValidateAgainstSchema(enrichmentSchema(), []byte(cc.Choices[0].Message.Content)); err != nil {
		t.Errorf("content not valid for schema: %v", err)
	}

	// Without response_format: a short synthetic text.
	cc, err = tb.client.Chat.Completions.New(ctx, chatBody(testModel, "light", nil))
	if err != nil {
		t.Fatalf("error calling chat completions: %v", err)
	}
	if got := cc.Choices[0].Message.Content; !strings.Contains(got, "Synthetic") || !strings.Contains(got, "light") {
		t.Errorf("text answer = %q", got)
	}

	// No model: 400.
	_, err = tb.client.Chat.Completions.New(ctx, chatBody("", "light", nil))
	if e := apiError(t, err); e.StatusCode != 400 || e.Param != "model" {
		t.Errorf("missing model: status %d param %q", e.StatusCode, e.Param)
	}
	if got := tb.srv.Stats().ChatCompletions; got != 2 {
		t.Errorf("Stats.ChatCompletions = %d, want 2", got)
	}
}

func TestSchemaKeywords(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 11})
	schemas := map[string]map[string]any{
		"defs and ref": {
			"type": "object", "additionalProperties": false, "required": []any{"senses"},
			"$defs": map[string]any{"sense": map[string]any{
				"type": "object", "additionalProperties": false, "required": []any{"gloss", "related"},
				"properties": map[string]any{
					"gloss":   map[string]any{"type": "string", "minLength": 3, "maxLength": 40},
					"related": map[string]any{"anyOf": []any{map[string]any{"$ref": "#/$defs/sense"}, map[string]any{"type": "null"}}},
				},
			}},
			"properties": map[string]any{"senses": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/sense"}}},
		},
		"numbers": {
			"type": "object", "additionalProperties": false, "required": []any{"i", "n", "e", "m", "b", "z"},
			"properties": map[string]any{
				"i": map[string]any{"type": "integer", "minimum": -3, "maximum": -1},
				"n": map[string]any{"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
				"e": map[string]any{"type": "integer", "enum": []any{2, 4, 8}},
				"m": map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "multipleOf": 7},
				"b": map[string]any{"type": "boolean"},
				"z": map[string]any{"type": "null"},
			},
		},
		"arrays": {
			"type": "object", "additionalProperties": false, "required": []any{"five", "unique", "nullable"},
			"properties": map[string]any{
				"five":     map[string]any{"type": "array", "minItems": 5, "maxItems": 5, "items": map[string]any{"type": "string"}},
				"unique":   map[string]any{"type": "array", "minItems": 3, "uniqueItems": true, "items": map[string]any{"enum": []any{"x", "y", "z"}}},
				"nullable": map[string]any{"type": []any{"array", "null"}, "items": map[string]any{"type": []any{"integer", "null"}}},
			},
		},
		"strings": {
			"type": "object", "additionalProperties": false, "required": []any{"when", "id", "code", "c"},
			"properties": map[string]any{
				"when": map[string]any{"type": "string", "format": "date-time"},
				"id":   map[string]any{"type": "string", "format": "uuid"},
				"code": map[string]any{"type": "string", "pattern": "^[a-z]+$"},
				"c":    map[string]any{"const": "fixed"},
			},
		},
		"top-level array": {"type": "array", "items": map[string]any{"type": "integer"}},
		"allOf": {"allOf": []any{
			map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}}, "required": []any{"a"}},
			map[string]any{"properties": map[string]any{"b": map[string]any{"type": "integer"}}, "required": []any{"b"}},
		}},
	}
	for name, schema := range schemas {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cc, err := tb.client.Chat.Completions.New(context.Background(), chatBody(testModel, "bank", schema))
			if err != nil {
				t.Fatalf("error calling chat completions: %v", err)
			}
			content := cc.Choices[0].Message.Content
			if err := emulator.ValidateAgainstSchema(schema, []byte(content)); err != nil {
				t.Errorf("content not valid: %v\n%s", err, content)
			}
		})
	}
}
