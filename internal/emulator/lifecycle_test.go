package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/floridify/batchsynth/internal/emulator"
)

func pacedConfig() emulator.Config {
	return emulator.Config{
		ValidatingFor: 10 * time.Second,
		InProgressFor: 100 * time.Second,
		FinalizingFor: 5 * time.Second,
		CancellingFor: 20 * time.Second,
	}
}

func TestLifecyclePacing(t *testing.T) {
	t.Parallel()
	tb := setupClock(t, pacedConfig())
	b := tb.submit(t, wordLines(t, 10, testModel))

	steps := []struct {
		advance   time.Duration
		status    openai.BatchStatus
		total     int64
		completed int64
	}{
		{0, openai.BatchStatusValidating, 0, 0},
		{9 * time.Second, openai.BatchStatusValidating, 0, 0},
		{1 * time.Second, openai.BatchStatusInProgress, 10, 0},
		{35 * time.Second, openai.BatchStatusInProgress, 10, 3},
		{40 * time.Second, openai.BatchStatusInProgress, 10, 7},
		{25 * time.Second, openai.BatchStatusFinalizing, 10, 10},
		{5 * time.Second, openai.BatchStatusCompleted, 10, 10},
	}
	for i, st := range steps {
		tb.clock.Advance(st.advance)
		got := tb.get(t, b.ID)
		if got.Status != st.status || got.RequestCounts.Total != st.total || got.RequestCounts.Completed != st.completed {
			t.Fatalf("step %d: status %s counts %s, want %s total %d completed %d",
				i, got.Status, got.RequestCounts.RawJSON(), st.status, st.total, st.completed)
		}
		if st.status == openai.BatchStatusValidating && (got.JSON.InProgressAt.Valid() || got.JSON.OutputFileID.Valid()) {
			t.Fatalf("step %d: validating batch has in_progress_at or output: %s", i, got.RawJSON())
		}
	}
	got := tb.get(t, b.ID)
	if got.InProgressAt-got.CreatedAt != 10 || got.FinalizingAt-got.CreatedAt != 110 || got.CompletedAt-got.CreatedAt != 115 {
		t.Errorf("timestamps relative to created_at: in_progress %d finalizing %d completed %d, want 10/110/115",
			got.InProgressAt-got.CreatedAt, got.FinalizingAt-got.CreatedAt, got.CompletedAt-got.CreatedAt)
	}
	if got.OutputFileID == "" || got.JSON.FailedAt.Valid() || got.JSON.CancelledAt.Valid() {
		t.Errorf("completed batch: %s", got.RawJSON())
	}
}

func TestCancelWithPartialOutput(t *testing.T) {
	t.Parallel()
	tb := setupClock(t, pacedConfig())
	ctx := context.Background()
	b := tb.submit(t, wordLines(t, 10, testModel))
	tb.clock.Advance(10*time.Second + 30*time.Second) // 3 of 10 lines done

	c, err := tb.client.Batches.Cancel(ctx, b.ID)
	if err != nil {
		t.Fatalf("error cancelling: %v", err)
	}
	if c.Status != openai.BatchStatusCancelling || c.CancellingAt == 0 {
		t.Fatalf("cancel returned %s (cancelling_at %d), want cancelling", c.Status, c.CancellingAt)
	}
	tb.clock.Advance(10 * time.Second)
	if got := tb.get(t, b.ID); got.Status != openai.BatchStatusCancelling || got.RequestCounts.Completed != 3 {
		t.Fatalf("during cancelling: %s counts %s", got.Status, got.RequestCounts.RawJSON())
	}
	tb.clock.Advance(10 * time.Second)
	got := tb.get(t, b.ID)
	if got.Status != openai.BatchStatusCancelled || got.CancelledAt == 0 {
		t.Fatalf("status %s, want cancelled", got.Status)
	}
	if got.RequestCounts.Total != 10 || got.RequestCounts.Completed != 3 || got.RequestCounts.Failed != 7 {
		t.Errorf("counts %s, want 10/3/7", got.RequestCounts.RawJSON())
	}
	out, errLines := tb.download(t, got.OutputFileID), tb.download(t, got.ErrorFileID)
	if len(out) != 3 || len(errLines) != 7 {
		t.Fatalf("output %d lines, error %d lines, want 3 and 7", len(out), len(errLines))
	}
	for _, l := range errLines {
		if l.Response != nil || l.Error == nil || l.Error.Code != "batch_cancelled" {
			t.Errorf("error line %s: %v", l.CustomID, l.raw)
		}
	}
	if rec := record(t, tb.srv, b.ID); rec.Outcomes[emulator.OutcomeCancelled] != 7 || len(rec.Succeeded()) != 3 {
		t.Errorf("record outcomes %v", rec.Outcomes)
	}

	// Cancelling a terminal batch is a 400.
	_, err = tb.client.Batches.Cancel(ctx, b.ID)
	if e := apiError(t, err); e.StatusCode != 400 || e.Type != "invalid_request_error" {
		t.Errorf("cancel of cancelled batch: %d %s", e.StatusCode, e.Type)
	}
}

func TestCancelWhileValidating(t *testing.T) {
	t.Parallel()
	tb := setupClock(t, pacedConfig())
	b := tb.submit(t, wordLines(t, 4, testModel))
	if _, err := tb.client.Batches.Cancel(context.Background(), b.ID); err != nil {
		t.Fatalf("error cancelling: %v", err)
	}
	tb.clock.Advance(time.Minute)
	got := tb.get(t, b.ID)
	if got.Status != openai.BatchStatusCancelled || got.OutputFileID != "" || len(tb.download(t, got.ErrorFileID)) != 4 {
		t.Errorf("cancelled while validating: %s", got.RawJSON())
	}
}

func TestExpireForced(t *testing.T) {
	t.Parallel()
	tb := setupClock(t, pacedConfig())
	b := tb.submit(t, wordLines(t, 10, testModel))
	tb.clock.Advance(10*time.Second + 40*time.Second)

	if err := tb.srv.Expire(b.ID); err != nil {
		t.Fatalf("error expiring: %v", err)
	}
	got := tb.get(t, b.ID)
	if got.Status != openai.BatchStatusExpired || got.ExpiredAt == 0 {
		t.Fatalf("status %s, want expired", got.Status)
	}
	out, errLines := tb.download(t, got.OutputFileID), tb.download(t, got.ErrorFileID)
	if len(out) != 4 || len(errLines) != 6 {
		t.Fatalf("output %d, error %d lines, want 4 and 6", len(out), len(errLines))
	}
	for _, l := range errLines {
		if string(l.raw["response"]) != "null" || l.Error == nil || l.Error.Code != "batch_expired" ||
			l.Error.Message != "This request could not be executed before the completion window expired." {
			t.Errorf("expired line: %v", l.raw)
		}
	}
	if got.Usage.InputTokens == 0 || got.RequestCounts.Completed != 4 {
		t.Errorf("expired batch bills the 4 lines done: usage %s counts %s", got.Usage.RawJSON(), got.RequestCounts.RawJSON())
	}

	if err := tb.srv.Expire(b.ID); !errors.Is(err, emulator.ErrBatchNotRunning) {
		t.Errorf("second Expire: %v, want ErrBatchNotRunning", err)
	}
	if err := tb.srv.Expire("batch_nope"); !errors.Is(err, emulator.ErrBatchNotFound) {
		t.Errorf("Expire of unknown batch: %v, want ErrBatchNotFound", err)
	}
}

func TestExpireWhenWindowRunsOut(t *testing.T) {
	t.Parallel()
	cfg := pacedConfig()
	cfg.CompletionWindow = 60 * time.Second // in_progress would need 100s
	tb := setupClock(t, cfg)
	b := tb.submit(t, wordLines(t, 10, testModel))
	if b.ExpiresAt != b.CreatedAt+60 {
		t.Errorf("expires_at = created_at+%d, want +60", b.ExpiresAt-b.CreatedAt)
	}
	tb.clock.Advance(61 * time.Second)
	got := tb.get(t, b.ID)
	if got.Status != openai.BatchStatusExpired || got.ExpiredAt-got.CreatedAt != 60 {
		t.Fatalf("status %s expired_at +%d", got.Status, got.ExpiredAt-got.CreatedAt)
	}
	if got.RequestCounts.Completed != 5 || len(tb.download(t, got.ErrorFileID)) != 5 {
		t.Errorf("counts %s, want 5 done in the 50s of in_progress", got.RequestCounts.RawJSON())
	}
}

func TestTokenLimit(t *testing.T) {
	t.Parallel()
	data := wordLines(t, 5, testModel)

	// Measure one batch's estimate on a throwaway emulator.
	probe := setup(t, emulator.Config{})
	perBatch := record(t, probe.srv, probe.submit(t, data).ID).EstimatedInputTokens
	if perBatch == 0 {
		t.Fatal("estimated input tokens is 0")
	}

	cfg := emulator.Config{
		ValidatingFor: 10 * time.Second,
		InProgressFor: time.Hour,
		TokenBudget:   map[string]int64{testModel: perBatch + perBatch/2},
	}
	tb := setupClock(t, cfg)
	ctx := context.Background()

	a := tb.submit(t, data)
	b := tb.submit(t, data) // created while a is validating: a comes first
	other := tb.submit(t, wordLines(t, 5, "gpt-4.1-nano"))
	tb.clock.Advance(10 * time.Second)

	if got := tb.get(t, a.ID); got.Status != openai.BatchStatusInProgress {
		t.Fatalf("first batch %s, want in_progress", got.Status)
	}
	got := tb.get(t, b.ID)
	if got.Status != openai.BatchStatusFailed || len(got.Errors.Data) != 1 || got.Errors.Data[0].Code != "token_limit_exceeded" {
		t.Fatalf("second batch %s errors %s, want failed token_limit_exceeded", got.Status, got.Errors.RawJSON())
	}
	wantMsg := fmt.Sprintf("Enqueued token limit reached for %s in organization org-emulator. Limit: ", testModel)
	if msg := got.Errors.Data[0].Message; !strings.HasPrefix(msg, wantMsg) || !strings.Contains(msg, "enqueued tokens") {
		t.Errorf("message %q", msg)
	}
	if got := tb.get(t, other.ID); got.Status != openai.BatchStatusInProgress {
		t.Errorf("batch of another model %s, want in_progress (no budget for it)", got.Status)
	}

	// Still blocked while a runs; released once a is terminal.
	blocked := tb.submit(t, data)
	tb.clock.Advance(10 * time.Second)
	if got := tb.get(t, blocked.ID); got.Status != openai.BatchStatusFailed {
		t.Fatalf("batch while budget is used: %s, want failed", got.Status)
	}
	if _, err := tb.client.Batches.Cancel(ctx, a.ID); err != nil {
		t.Fatalf("error cancelling: %v", err)
	}
	if got := tb.get(t, a.ID); got.Status != openai.BatchStatusCancelled {
		t.Fatalf("first batch %s, want cancelled", got.Status)
	}
	c := tb.submit(t, data)
	tb.clock.Advance(10 * time.Second)
	if got := tb.get(t, c.ID); got.Status != openai.BatchStatusInProgress {
		t.Errorf("batch after release: %s (%s), want in_progress", got.Status, got.Errors.RawJSON())
	}
}

func TestListAutoPaging(t *testing.T) {
	t.Parallel()
	tb := setup(t, emulator.Config{})
	ctx := context.Background()
	fileID := tb.upload(t, wordLines(t, 1, testModel))
	var want []string
	for i := range 7 {
		b := tb.create(t, fileID, map[string]string{"n": fmt.Sprint(i)})
		want = append([]string{b.ID}, want...) // newest first
	}

	page, err := tb.client.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(3)})
	if err != nil {
		t.Fatalf("error listing: %v", err)
	}
	if len(page.Data) != 3 || !page.HasMore || page.Data[0].ID != want[0] {
		t.Fatalf("first page: %d items has_more %v", len(page.Data), page.HasMore)
	}

	var got []string
	iter := tb.client.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(2)})
	for iter.Next() {
		got = append(got, iter.Current().ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("error paging: %v", err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("auto-paging gave\n%v\nwant\n%v", got, want)
	}
	if n := tb.srv.Stats().Requests["GET /v1/batches"]; n != 1+4 {
		t.Errorf("list requests = %d, want 5 (1 + 4 pages of 2)", n)
	}

	if _, err := tb.client.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(101)}); apiError(t, err).StatusCode != 400 {
		t.Errorf("limit 101 accepted")
	}
}
