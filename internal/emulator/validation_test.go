package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/floridify/batchsynth/internal/emulator"
)

func TestValidationFailures(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{MaxLines: 3, MaxFileBytes: 4000})
	body := func(model string) any { return chatBody(model, "bank", nil) }
	line := func(id string) any { return batchLine(id, body(testModel)) }
	withoutMethod := map[string]any{"custom_id": "m", "url": "/v1/chat/completions", "body": body(testModel)}
	getMethod := map[string]any{"custom_id": "g", "method": "GET", "url": "/v1/chat/completions", "body": body(testModel)}
	embeddings := map[string]any{"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": map[string]any{"model": "text-embedding-3-small", "input": "bank"}}
	long := batchLine("long", chatBody(testModel, strings.Repeat("x", 5000), nil))

	tests := []struct {
		name      string
		data      []byte
		endpoint  openai.BatchNewParamsEndpoint
		wantCode  string
		wantLine  int64
		wantParam string
	}{
		{"invalid json", append(jsonl(t, line("a")), []byte("{not json\n")...), "", "invalid_json_line", 2, ""},
		{"duplicate custom_id", jsonl(t, line("a"), line("b"), line("a")), "", "duplicate_custom_id", 3, "custom_id"},
		{"url mismatch", jsonl(t, line("a"), embeddings), "", "url_mismatch", 2, "url"},
		{"model mismatch", jsonl(t, line("a"), batchLine("b", body("gpt-4.1-nano"))), "", "model_mismatch", 2, "body.model"},
		{"empty file", []byte("\n\n"), "", "empty_file", 0, ""},
		{"too many tasks", jsonl(t, line("a"), line("b"), line("c"), line("d")), "", "too_many_tasks", 0, ""},
		{"file too large", jsonl(t, long), "", "file_too_large", 0, ""},
		{"missing method", jsonl(t, line("a"), withoutMethod), "", "missing_required_parameter", 2, "method"},
		{"method not POST", jsonl(t, getMethod), "", "invalid_value", 1, "method"},
		{"endpoint not run", jsonl(t, embeddings), openai.BatchNewParamsEndpointV1Embeddings, "unsupported_endpoint", 0, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			endpoint := tt.endpoint
			if endpoint == "" {
				endpoint = openai.BatchNewParamsEndpointV1ChatCompletions
			}
			b, err := tb.client.Batches.New(context.Background(), openai.BatchNewParams{
				InputFileID:      tb.upload(t, tt.data),
				Endpoint:         endpoint,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
			})
			if err != nil {
				t.Fatalf("create must succeed (validation is asynchronous): %v", err)
			}
			got := tb.wait(t, b.ID)
			if got.Status != openai.BatchStatusFailed || got.FailedAt == 0 || got.Errors.Object != "list" || len(got.Errors.Data) == 0 {
				t.Fatalf("status %s errors %s, want failed", got.Status, got.Errors.RawJSON())
			}
			e := got.Errors.Data[0]
			if e.Code != tt.wantCode || e.Line != tt.wantLine || e.Param != tt.wantParam || e.Message == "" {
				t.Errorf("error %s, want code %s line %d param %q", e.RawJSON(), tt.wantCode, tt.wantLine, tt.wantParam)
			}
			if tt.wantLine == 0 && e.JSON.Line.Valid() {
				t.Errorf("line should be null: %s", e.RawJSON())
			}
			if got.OutputFileID != "" || got.ErrorFileID != "" || got.RequestCounts.Total != 0 {
				t.Errorf("failed batch has files or counts: %s", got.RawJSON())
			}
		})
	}
}

func TestPerLineBadRequests(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	noModel := chatBody("", "bank", nil)
	badFormat := map[string]any{"model": testModel, "messages": []any{map[string]any{"role": "user", "content": "word: bank"}},
		"response_format": map[string]any{"type": "xml"}}
	b := tb.wait(t, tb.submit(t, jsonl(t,
		batchLine("ok", chatBody(testModel, "bank", enrichmentSchema())),
		batchLine("no-model", noModel),
		batchLine("no-messages", map[string]any{"model": testModel}),
		batchLine("bad-format", badFormat),
	)).ID)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 1 || b.RequestCounts.Failed != 3 {
		t.Fatalf("status %s counts %s", b.Status, b.RequestCounts.RawJSON())
	}
	params := map[string]string{}
	for _, l := range tb.download(t, b.ErrorFileID) {
		var body struct {
			Error struct{ Message, Type, Param, Code string }
		}
		if err := json.Unmarshal(l.Response.Body, &body); err != nil || l.Response.StatusCode != 400 || string(l.raw["error"]) != "null" {
			t.Fatalf("bad error line %v", l.raw)
		}
		params[l.CustomID] = body.Error.Param
	}
	want := map[string]string{"no-model": "model", "no-messages": "messages", "bad-format": "response_format.type"}
	for id, p := range want {
		if params[id] != p {
			t.Errorf("%s: param %q, want %q", id, params[id], p)
		}
	}
}

func TestCreateBatchRejects(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	ctx := context.Background()
	fileID := tb.upload(t, wordLines(t, 1, testModel))
	tooMany := shared.Metadata{}
	for i := range 17 {
		tooMany[customID(i)] = "v"
	}
	tests := []struct {
		name      string
		params    openai.BatchNewParams
		wantParam string
	}{
		{"unknown file", openai.BatchNewParams{InputFileID: "file-nope", Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"}, "file_id"},
		{"window", openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "48h"}, "completion_window"},
		{"endpoint", openai.BatchNewParams{InputFileID: fileID, Endpoint: "/v1/nope", CompletionWindow: "24h"}, "endpoint"},
		{"17 metadata pairs", openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h", Metadata: tooMany}, "metadata"},
		{"long metadata key", openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h",
			Metadata: shared.Metadata{strings.Repeat("k", 65): "v"}}, "metadata"},
		{"long metadata value", openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h",
			Metadata: shared.Metadata{"k": strings.Repeat("v", 513)}}, "metadata"},
	}
	for _, tt := range tests {
		_, err := tb.client.Batches.New(ctx, tt.params)
		e := apiError(t, err)
		if e.StatusCode != 400 || e.Param != tt.wantParam || e.Type != "invalid_request_error" {
			t.Errorf("%s: status %d param %q type %q, want 400 %q", tt.name, e.StatusCode, e.Param, e.Type, tt.wantParam)
		}
	}
	_, err := tb.client.Batches.New(ctx, tests[0].params)
	if msg := apiError(t, err).Message; !strings.HasPrefix(msg, "Cannot find file file-nope") {
		t.Errorf("unknown file message %q", msg)
	}
	if n := len(tb.srv.Batches()); n != 0 {
		t.Errorf("%d batches created by rejected calls", n)
	}
	// 16 pairs, 64-char keys and 512-char values are fine.
	md := shared.Metadata{strings.Repeat("k", 64): strings.Repeat("v", 512)}
	for i := range 15 {
		md[customID(i)] = "v"
	}
	tb.create(t, fileID, md)
}

func TestBatchUploadNeedsJSONLName(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	ctx := context.Background()
	data := wordLines(t, 1, testModel)
	for _, tt := range []struct {
		name   string
		file   io.Reader
		wantOK bool
	}{
		{"x.jsonl", openai.File(bytes.NewReader(data), "x.jsonl", "application/jsonl"), true},
		{"x.txt", openai.File(bytes.NewReader(data), "x.txt", "text/plain"), false},
		{"unnamed reader", bytes.NewReader(data), false},
	} {
		_, err := tb.client.Files.New(ctx, openai.FileNewParams{File: tt.file, Purpose: openai.FilePurposeBatch})
		if tt.wantOK {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		e := apiError(t, err)
		if e.StatusCode != 400 || e.Type != "invalid_request_error" || e.Message != "Invalid file format for Batch API. Must be .jsonl" {
			t.Errorf("%s: %d %s %q", tt.name, e.StatusCode, e.Type, e.Message)
		}
	}
	// Other purposes take other names.
	if _, err := tb.client.Files.New(ctx, openai.FileNewParams{
		File: openai.File(strings.NewReader("notes"), "notes.txt", "text/plain"), Purpose: openai.FilePurposeUserData,
	}); err != nil {
		t.Errorf("user_data .txt upload: %v", err)
	}
}

func TestFilesAPI(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	ctx := context.Background()
	data := wordLines(t, 2, testModel)
	var batchIDs []string
	for range 3 {
		batchIDs = append(batchIDs, tb.upload(t, data))
	}
	userData, err := tb.client.Files.New(ctx, openai.FileNewParams{
		File: openai.File(strings.NewReader("hello"), "hello.txt", "text/plain"), Purpose: openai.FilePurposeUserData,
	})
	if err != nil {
		t.Fatal(err)
	}

	f, err := tb.client.Files.Get(ctx, batchIDs[0])
	if err != nil {
		t.Fatalf("error getting file: %v", err)
	}
	if f.Bytes != int64(len(data)) || f.Filename != "batch.jsonl" || f.Purpose != openai.FileObjectPurposeBatch ||
		f.Status != openai.FileObjectStatusProcessed || f.ExpiresAt != f.CreatedAt+30*86400 {
		t.Errorf("file object %s", f.RawJSON())
	}
	if userData.JSON.ExpiresAt.Valid() {
		t.Errorf("user_data file expires: %s", userData.RawJSON())
	}

	// Newest first by default; purpose filter; paging by after.
	var listed []string
	iter := tb.client.Files.ListAutoPaging(ctx, openai.FileListParams{Purpose: openai.String("batch"), Limit: openai.Int(1)})
	for iter.Next() {
		listed = append(listed, iter.Current().ID)
	}
	if iter.Err() != nil || strings.Join(listed, ",") != strings.Join([]string{batchIDs[2], batchIDs[1], batchIDs[0]}, ",") {
		t.Errorf("listed %v (err %v), want batch files newest first", listed, iter.Err())
	}
	asc, err := tb.client.Files.List(ctx, openai.FileListParams{Order: openai.FileListParamsOrderAsc})
	if err != nil || len(asc.Data) != 4 || asc.Data[0].ID != batchIDs[0] || asc.HasMore {
		t.Errorf("ascending list: %v", err)
	}

	res, err := tb.client.Files.Content(ctx, batchIDs[1])
	if err != nil {
		t.Fatalf("error getting content: %v", err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, data) || res.Header.Get(emulator.HeaderSynthetic) != "synthetic" {
		t.Errorf("content differs from upload or header missing")
	}

	del, err := tb.client.Files.Delete(ctx, batchIDs[1])
	if err != nil || !del.Deleted || del.ID != batchIDs[1] {
		t.Fatalf("delete: %v %s", err, del.RawJSON())
	}
	if _, err := tb.client.Files.Get(ctx, batchIDs[1]); apiError(t, err).StatusCode != 404 {
		t.Errorf("deleted file still found")
	}
	if _, err := tb.client.Files.Content(ctx, batchIDs[1]); apiError(t, err).StatusCode != 404 {
		t.Errorf("deleted file content still served")
	}
}

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	_, err := tb.client.Batches.Get(context.Background(), "batch_nope")
	if e := apiError(t, err); e.StatusCode != 404 {
		t.Errorf("unknown batch: %d", e.StatusCode)
	}
	_, err = tb.client.Models.List(context.Background())
	if e := apiError(t, err); e.StatusCode != 404 || !strings.HasPrefix(e.Message, "Invalid URL (GET /v1/models)") {
		t.Errorf("unknown route: %d %q", e.StatusCode, e.Message)
	}
}
