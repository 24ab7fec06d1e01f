package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/floridify/batchsynth/internal/emulator"
)

func Test429RetriedBySDK(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 5, Faults: emulator.Faults{Rate429: 0.5, RetryAfter: time.Millisecond}},
		option.WithMaxRetries(20))
	ctx := context.Background()
	for i := range 10 {
		if _, err := tb.client.Batches.List(ctx, openai.BatchListParams{}); err != nil {
			t.Fatalf("call %d failed despite retries: %v", i, err)
		}
	}
	st := tb.srv.Stats()
	if st.Faults[emulator.Fault429] == 0 {
		t.Fatalf("no 429 injected: %+v", st.Faults)
	}
	if got := st.Requests["GET /v1/batches"]; got != 10+st.Faults[emulator.Fault429] {
		t.Errorf("requests %d, want 10 successes + %d retried 429s", got, st.Faults[emulator.Fault429])
	}

	// The headers the SDK reads.
	tb.srv.SetFaults(emulator.Faults{Rate429: 1, RetryAfter: 1500 * time.Millisecond})
	res, err := http.Get(tb.url + "/v1/batches")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || res.Header.Get("Retry-After-Ms") != "1500" {
		t.Errorf("429 answer: %d Retry-After %q Retry-After-Ms %q", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("Retry-After-Ms"))
	}
	if res.Header.Get(emulator.HeaderSynthetic) != "synthetic" {
		t.Errorf("fault answer lacks %s", emulator.HeaderSynthetic)
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Faults: emulator.Faults{Rate500: 1}})
	ctx := context.Background()
	_, err := tb.client.Batches.List(ctx, openai.BatchListParams{})
	if e := apiError(t, err); e.StatusCode != 500 || e.Type != "server_error" {
		t.Errorf("got %d %s, want 500 server_error", e.StatusCode, e.Type)
	}
	tb.srv.SetFaults(emulator.Faults{Rate503: 1})
	_, err = tb.client.Files.Get(ctx, "file-x")
	if e := apiError(t, err); e.StatusCode != 503 {
		t.Errorf("got %d, want 503", e.StatusCode)
	}
	tb.srv.SetFaults(emulator.Faults{})
	if _, err := tb.client.Batches.List(ctx, openai.BatchListParams{}); err != nil {
		t.Errorf("after clearing faults: %v", err)
	}
	st := tb.srv.Stats()
	if st.Faults[emulator.Fault500] != 1 || st.Faults[emulator.Fault503] != 1 {
		t.Errorf("fault counts %v", st.Faults)
	}
}

func TestSlowAnswerExceedsClientTimeout(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Faults: emulator.Faults{RateSlow: 1, SlowDelay: 5 * time.Second}},
		option.WithRequestTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := tb.client.Batches.List(context.Background(), openai.BatchListParams{})
	if err == nil {
		t.Fatal("slow answer did not time out")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("client waited %s", d)
	}
	if n := tb.srv.Stats().Faults[emulator.FaultSlow]; n != 1 {
		t.Errorf("slow faults %d, want 1", n)
	}
}

func TestLoseCreate(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 9, Faults: emulator.Faults{RateLoseCreate: 1}})
	ctx := context.Background()
	fileID := tb.upload(t, wordLines(t, 2, testModel))

	// Without retries: every create errors, yet every batch exists.
	const n = 6
	for i := range n {
		_, err := tb.client.Batches.New(ctx, openai.BatchNewParams{
			InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
			Metadata:         map[string]string{"synthesis_batch": fmt.Sprintf("sb-%d", i)},
		})
		if err == nil {
			t.Fatalf("create %d succeeded; the response should be lost", i)
		}
	}
	recs := tb.srv.Batches()
	if len(recs) != n {
		t.Fatalf("%d batches exist, want %d", len(recs), n)
	}
	for _, r := range recs {
		if !r.CreateResponseLost {
			t.Errorf("batch %s not marked lost", r.ID)
		}
	}
	st := tb.srv.Stats()
	if st.CreateLost != n || st.CreateAnswered != 0 || st.BatchesCreated != n || st.Faults[emulator.FaultLoseCreate] != n {
		t.Errorf("stats %+v", st)
	}

	// Reconciliation: a list finds each batch by its metadata.
	tb.srv.SetFaults(emulator.Faults{})
	found := map[string]string{}
	iter := tb.client.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(4)})
	for iter.Next() {
		b := iter.Current()
		found[b.Metadata["synthesis_batch"]] = b.ID
	}
	if iter.Err() != nil {
		t.Fatal(iter.Err())
	}
	for i := range n {
		if found[fmt.Sprintf("sb-%d", i)] == "" {
			t.Errorf("sb-%d not found by listing", i)
		}
	}

	// With the SDK's default retries one call creates several batches.
	retrying := openai.NewClient(option.WithBaseURL(tb.url+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(2))
	tb.srv.SetFaults(emulator.Faults{RateLoseCreate: 1})
	_, err := retrying.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err == nil {
		t.Fatal("create succeeded")
	}
	if got := len(tb.srv.Batches()); got != n+3 {
		t.Errorf("%d batches after a retried create, want %d (3 attempts, 3 duplicates)", got, n+3)
	}
}

func TestFileNotFoundRightAfterUpload(t *testing.T) {
	t.Parallel()
	tb := setupClock(t, emulator.Config{Faults: emulator.Faults{RateFileNotFound: 1, FileNotFoundWindow: time.Minute}})
	ctx := context.Background()
	fileID := tb.upload(t, wordLines(t, 1, testModel))
	params := openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"}

	_, err := tb.client.Batches.New(ctx, params)
	e := apiError(t, err)
	if e.StatusCode != 400 || e.Param != "file_id" || !strings.HasPrefix(e.Message, "Cannot find file "+fileID) {
		t.Fatalf("got %d param %q %q", e.StatusCode, e.Param, e.Message)
	}
	if len(tb.srv.Batches()) != 0 || tb.srv.Stats().Faults[emulator.FaultFileNotFound] != 1 {
		t.Fatalf("batch created or fault not counted")
	}
	tb.clock.Advance(time.Minute)
	if _, err := tb.client.Batches.New(ctx, params); err != nil {
		t.Errorf("create after the window: %v", err)
	}
}

func TestLine4xx(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 2, Faults: emulator.Faults{RateLine4xx: 0.5}})
	const n = 30
	b := tb.wait(t, tb.submit(t, wordLines(t, n, testModel)).ID)
	out, errLines := tb.download(t, b.OutputFileID), tb.download(t, b.ErrorFileID)
	if len(errLines) == 0 || len(out) == 0 || len(out)+len(errLines) != n {
		t.Fatalf("output %d, error %d lines, want a mix of %d", len(out), len(errLines), n)
	}
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Failed != int64(len(errLines)) || b.RequestCounts.Completed != int64(len(out)) {
		t.Errorf("status %s counts %s", b.Status, b.RequestCounts.RawJSON())
	}
	for _, l := range errLines {
		if l.Response == nil || l.Response.StatusCode != 400 || string(l.raw["error"]) != "null" {
			t.Fatalf("4xx line shape: %v", l.raw)
		}
		var body struct {
			Error map[string]json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(l.Response.Body, &body); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := body.Error[k]; !ok {
				t.Errorf("body.error lacks %s: %s", k, l.Response.Body)
			}
		}
	}
	rec := record(t, tb.srv, b.ID)
	if rec.Outcomes[emulator.OutcomeHTTP4xx] != len(errLines) || tb.srv.Stats().Faults[emulator.FaultLine4xx] != int64(len(errLines)) {
		t.Errorf("record outcomes %v, stats %v", rec.Outcomes, tb.srv.Stats().Faults)
	}
	var billed int64
	for _, l := range rec.Succeeded() {
		billed += l.Usage.InputTokens
	}
	if billed != b.Usage.InputTokens {
		t.Errorf("usage %d, sum billed over succeeded lines %d", b.Usage.InputTokens, billed)
	}
}

func TestRefusalLengthInvalidSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults emulator.Faults
		check  func(t *testing.T, cc openai.ChatCompletion, raw json.RawMessage)
	}{
		{"refusal", emulator.Faults{RateRefusal: 1}, func(t *testing.T, cc openai.ChatCompletion, raw json.RawMessage) {
			m := cc.Choices[0].Message
			if m.Refusal == "" || m.JSON.Content.Valid() || !strings.Contains(string(raw), `"content":null`) {
				t.Errorf("refusal line: %s", raw)
			}
		}},
		{"length", emulator.Faults{RateLength: 1}, func(t *testing.T, cc openai.ChatCompletion, raw json.RawMessage) {
			c := cc.Choices[0]
			if c.FinishReason != "length" || c.Message.Content == "" || json.Valid([]byte(c.Message.Content)) {
				t.Errorf("length line: finish %s content %q", c.FinishReason, c.Message.Content)
			}
		}},
		{"invalid schema", emulator.Faults{RateInvalidSchema: 1}, func(t *testing.T, cc openai.ChatCompletion, raw json.RawMessage) {
			content := cc.Choices[0].Message.Content
			if !json.Valid([]byte(content)) {
				t.Fatalf("invalid-schema content is not JSON: %s", content)
			}
			err := emulator.ValidateAgainstSchema(enrichmentSchema(), []byte(content))
			if err == nil {
				t.Errorf("content is valid for the schema: %s", content)
			} else if !strings.Contains(err.Error(), "missing required property") && !strings.Contains(err.Error(), "enum") {
				t.Errorf("unexpected kind of invalidity: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, emulator.Config{Seed: 4, Faults: tt.faults})
			b := tb.wait(t, tb.submit(t, wordLines(t, 8, testModel)).ID)
			if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 8 {
				t.Fatalf("status %s counts %s: these lines are 200s", b.Status, b.RequestCounts.RawJSON())
			}
			for _, l := range tb.download(t, b.OutputFileID) {
				if l.Response.StatusCode != 200 {
					t.Fatalf("status %d", l.Response.StatusCode)
				}
				tt.check(t, completion(t, l), l.Response.Body)
			}
		})
	}
}

func TestMixedLineFaultsAccountForEveryLine(t *testing.T) {
	t.Parallel()
	f := emulator.Faults{RateLine4xx: 0.2, RateRefusal: 0.2, RateLength: 0.2, RateInvalidSchema: 0.2, Shuffle: true}
	tb := setup(t, emulator.Config{Seed: 8, Faults: f})
	const n = 40
	b := tb.wait(t, tb.submit(t, wordLines(t, n, testModel)).ID)
	seen := map[string]int{}
	for _, l := range append(tb.download(t, b.OutputFileID), tb.download(t, b.ErrorFileID)...) {
		seen[l.CustomID]++
	}
	for i := range n {
		if seen[customID(i)] != 1 {
			t.Errorf("%s appears %d times across output and error files", customID(i), seen[customID(i)])
		}
	}
	rec := record(t, tb.srv, b.ID)
	for _, o := range []emulator.LineOutcome{emulator.OutcomeHTTP4xx, emulator.OutcomeRefusal, emulator.OutcomeLength, emulator.OutcomeInvalidSchema, emulator.OutcomeSuccess} {
		if rec.Outcomes[o] == 0 {
			t.Errorf("no %s line among %d: %v", o, n, rec.Outcomes)
		}
	}
}

func TestBatchLevelFaults(t *testing.T) {
	t.Parallel()
	t.Run("fail", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, emulator.Config{Faults: emulator.Faults{RateBatchFail: 1}})
		b := tb.wait(t, tb.submit(t, wordLines(t, 3, testModel)).ID)
		if b.Status != openai.BatchStatusFailed || len(b.Errors.Data) != 1 || b.Errors.Data[0].Code != "batch_failed" {
			t.Errorf("status %s errors %s", b.Status, b.Errors.RawJSON())
		}
	})
	t.Run("expire", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, emulator.Config{Faults: emulator.Faults{RateExpire: 1}})
		b := tb.wait(t, tb.submit(t, wordLines(t, 10, testModel)).ID)
		out, errLines := tb.download(t, b.OutputFileID), tb.download(t, b.ErrorFileID)
		if b.Status != openai.BatchStatusExpired || len(out) != 5 || len(errLines) != 5 {
			t.Fatalf("status %s, output %d, error %d", b.Status, len(out), len(errLines))
		}
		for _, l := range errLines {
			if l.Error == nil || l.Error.Code != "batch_expired" {
				t.Errorf("error line %v", l.raw)
			}
		}
	})
	t.Run("zero success", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, emulator.Config{Faults: emulator.Faults{RateZeroSuccess: 1}})
		b := tb.wait(t, tb.submit(t, wordLines(t, 9, testModel)).ID)
		if b.Status != openai.BatchStatusCompleted || b.OutputFileID != "" || b.JSON.OutputFileID.Valid() ||
			b.RequestCounts.Completed != 0 || b.RequestCounts.Failed != 9 || b.Usage.TotalTokens != 0 {
			t.Fatalf("zero-success batch: %s", b.RawJSON())
		}
		for _, l := range tb.download(t, b.ErrorFileID) {
			if l.Response == nil || l.Response.StatusCode != 400 {
				t.Errorf("error line %v", l.raw)
			}
		}
		if tb.srv.Stats().Faults[emulator.FaultZeroSuccess] != 1 {
			t.Errorf("fault not counted")
		}
	})
}

func TestShuffle(t *testing.T) {
	t.Parallel()
	order := func(shuffle bool) []string {
		tb := setup(t, emulator.Config{Seed: 1, Faults: emulator.Faults{Shuffle: shuffle}})
		b := tb.wait(t, tb.submit(t, wordLines(t, 30, testModel)).ID)
		var ids []string
		for _, l := range tb.download(t, b.OutputFileID) {
			ids = append(ids, l.CustomID)
		}
		return ids
	}
	plain, shuffled := order(false), order(true)
	if !slices.IsSorted(plain) {
		t.Errorf("unshuffled output not in input order: %v", plain)
	}
	if slices.IsSorted(shuffled) {
		t.Errorf("shuffled output in input order")
	}
	slices.Sort(shuffled)
	if !slices.Equal(plain, shuffled) {
		t.Errorf("shuffled output has other lines")
	}
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{Seed: 6, Faults: emulator.Faults{Rate429: 0.1, Rate503: 0.05, RateLine4xx: 0.1}},
		option.WithMaxRetries(30))
	ctx := context.Background()
	// run is one worker's round trip; it returns errors, since t.Fatal must not
	// be called off the test goroutine.
	run := func(w, i int) error {
		lines := make([]any, 5+w)
		for j := range lines {
			lines[j] = batchLine(customID(j), chatBody(testModel, "bank", enrichmentSchema()))
		}
		data, err := marshalLines(lines)
		if err != nil {
			return err
		}
		f, err := tb.client.Files.New(ctx, openai.FileNewParams{
			File: openai.File(bytes.NewReader(data), "batch.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch,
		})
		if err != nil {
			return fmt.Errorf("error uploading: %w", err)
		}
		b, err := tb.client.Batches.New(ctx, openai.BatchNewParams{
			InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: "24h", Metadata: map[string]string{"worker": fmt.Sprint(w), "i": fmt.Sprint(i)},
		})
		if err != nil {
			return fmt.Errorf("error creating: %w", err)
		}
		for b.Status != openai.BatchStatusCompleted {
			if b.Status == openai.BatchStatusFailed {
				return fmt.Errorf("batch %s failed: %s", b.ID, b.Errors.RawJSON())
			}
			if b, err = tb.client.Batches.Get(ctx, b.ID); err != nil {
				return fmt.Errorf("error polling: %w", err)
			}
		}
		if b.RequestCounts.Total != int64(5+w) {
			return fmt.Errorf("batch %s total %d", b.ID, b.RequestCounts.Total)
		}
		res, err := tb.client.Files.Content(ctx, b.OutputFileID)
		if err != nil {
			return fmt.Errorf("error downloading: %w", err)
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		_, err = tb.client.Chat.Completions.New(ctx, chatBody(testModel, "bank", enrichmentSchema()))
		var apiErr *openai.Error
		if err != nil && !(errors.As(err, &apiErr) && apiErr.StatusCode == 400) {
			return fmt.Errorf("error calling chat completions: %w", err)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for w := range 8 {
		wg.Go(func() {
			for i := range 3 {
				if err := run(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := tb.srv.Stats(); st.BatchesCreated != 24 || st.CreateAnswered != 24 || st.FilesUploaded != 24 {
		t.Errorf("stats: created %d answered %d files %d", st.BatchesCreated, st.CreateAnswered, st.FilesUploaded)
	}
}
