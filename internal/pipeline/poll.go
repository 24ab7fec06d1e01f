package pipeline

import (
	"context"
	"fmt"

	"github.com/openai/openai-go/v3"
	"go.mongodb.org/mongo-driver/v2/bson"

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
	rank := store.StatusRank(status)
	set := bson.M{
		"openai_status": status, "status_rank": rank, "updated_at": now,
		"request_counts": store.RequestCounts{Total: ob.RequestCounts.Total, Completed: ob.RequestCounts.Completed, Failed: ob.RequestCounts.Failed},
	}
	if ob.JSON.Usage.Valid() {
		set["usage"] = store.Usage{InputTokens: ob.Usage.InputTokens, CachedTokens: ob.Usage.InputTokensDetails.CachedTokens, OutputTokens: ob.Usage.OutputTokens}
	}
	if ob.OutputFileID != "" {
		set["output_file_id"] = ob.OutputFileID
	}
	if ob.ErrorFileID != "" {
		set["error_file_id"] = ob.ErrorFileID
	}
	if len(ob.Errors.Data) > 0 {
		errs := make([]store.BatchError, 0, len(ob.Errors.Data))
		for _, e := range ob.Errors.Data {
			errs = append(errs, store.BatchError{Code: e.Code, Message: e.Message, Line: e.Line, Param: e.Param})
		}
		set["errors"] = errs
	}
	terminal := store.IsTerminalStatus(status)
	if terminal {
		set["state"] = store.BatchTerminal
		set["terminal_at"] = now
	}
	upd := bson.M{"$set": set, "$inc": bson.M{"poll_count": 1}}
	if status != b.OpenAIStatus {
		upd["$push"] = bson.M{"status_history": store.StatusChange{Status: status, At: now}}
	}
	if _, err := d.Store.Batches.UpdateOne(ctx,
		bson.M{"_id": b.ID, "state": store.BatchSubmitted, "status_rank": bson.M{"$lte": rank}}, upd); err != nil {
		return fmt.Errorf("error recording status of %s: %w", b.ID, err)
	}
	if status != b.OpenAIStatus {
		d.log().Info("batch status", "batch_id", b.ID, "openai_batch_id", b.OpenAIBatchID, "status", status,
			"completed", ob.RequestCounts.Completed, "failed", ob.RequestCounts.Failed, "total", ob.RequestCounts.Total)
	}
	if terminal {
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
