package pipeline

import (
	"context"

	"github.com/openai/openai-go/v3"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// Poll retrieves a submitted batch from OpenAI and stores its status, counts and usage. Status writes are
// monotonic (a stale poll never moves a batch back); on a terminal status the batch is handed to apply.
func (d *Deps) Poll(ctx context.Context, batchID string) error {
	b, err := d.Store.Batch(ctx, batchID)
	if err != nil {
		return err
	}
	switch b.State {
	case store.BatchSubmitted:
	case store.BatchTerminal:
		return d.enqueueApply(b.ID)
	default:
		return nil
	}
	if b.CancelAsked && b.OpenAIStatus != "cancelling" {
		if _, err := d.OpenAI.Cancel(ctx, b.OpenAIBatchID); err != nil {
			d.log().Warn("cancel request failed; will retry at next poll", "batch_id", b.ID, "error", err)
		}
	}
	ob, err := d.OpenAI.Get(ctx, b.OpenAIBatchID)
	if err != nil {
		return err
	}
	return d.recordStatus(ctx, b, ob)
}

func (d *Deps) recordStatus(ctx context.Context, b *store.Batch, ob *openai.Batch) error {
	now := d.now()
	status := string(ob.Status)
	if status == "completed" && ob.OutputFileID == "" && ob.ErrorFileID == "" && ob.RequestCounts.Total > 0 {
		// Read too early, a completed batch can show no file ids yet (LiteLLM #11286). Applying it now would
		// send every request again as a leftover and pay for the answered ones twice: it is still finalizing.
		d.log().Warn("batch completed without result files yet; polling again", "batch_id", b.ID, "openai_batch_id", b.OpenAIBatchID)
		status = "finalizing"
	}
	st := store.ProviderStatus{
		Status:       status,
		Counts:       store.RequestCounts{Total: ob.RequestCounts.Total, Completed: ob.RequestCounts.Completed, Failed: ob.RequestCounts.Failed},
		OutputFileID: ob.OutputFileID,
		ErrorFileID:  ob.ErrorFileID,
	}
	if ob.JSON.Usage.Valid() {
		st.Usage = &store.Usage{InputTokens: ob.Usage.InputTokens, CachedTokens: ob.Usage.InputTokensDetails.CachedTokens, OutputTokens: ob.Usage.OutputTokens}
	}
	if len(ob.Errors.Data) > 0 {
		st.Errors = make([]store.BatchError, 0, len(ob.Errors.Data))
		for _, e := range ob.Errors.Data {
			st.Errors = append(st.Errors, store.BatchError{Code: e.Code, Message: e.Message, Line: e.Line, Param: e.Param})
		}
	}
	if _, err := d.Store.RecordProviderStatus(ctx, b.ID, b.OpenAIStatus, st, now); err != nil {
		return err
	}
	if status != b.OpenAIStatus {
		d.log().Info("batch status", "batch_id", b.ID, "openai_batch_id", b.OpenAIBatchID, "status", status,
			"completed", ob.RequestCounts.Completed, "failed", ob.RequestCounts.Failed, "total", ob.RequestCounts.Total)
	}
	if store.IsTerminalStatus(status) {
		return d.enqueueApply(b.ID)
	}
	return nil
}

func (d *Deps) enqueueApply(batchID string) error {
	t, err := tasks.NewApplyResultsTask(batchID)
	if err != nil {
		return err
	}
	return tasks.Enqueue(d.Queue, t)
}
