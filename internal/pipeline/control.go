package pipeline

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
)

// CancelJob stops a job: its pending requests are cancelled, and batches that carry only its requests are
// cancelled at OpenAI (what completed in them is still applied). Requests shared with other jobs go on.
func (d *Deps) CancelJob(ctx context.Context, jobID string) (int, error) {
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return 0, err
	}
	now := d.now()
	if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": job.ID, "status": bson.M{"$ne": store.JobCancelled}},
		bson.M{"$set": bson.M{"status": store.JobCancelled, "updated_at": now, "finished_at": now}}); err != nil {
		return 0, fmt.Errorf("error cancelling job %s: %w", jobID, err)
	}
	// Only requests no other job follows: {job_ids: [jobID]} matches the whole array.
	res, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"job_ids": bson.A{jobID}, "state": store.StatePending},
		bson.M{"$set": bson.M{"state": store.StateCancelled, "last_error": "job cancelled", "settled_at": now, "updated_at": now}})
	if err != nil {
		return 0, fmt.Errorf("error cancelling requests of %s: %w", jobID, err)
	}
	n := int(res.ModifiedCount)
	batchIDs, err := store.DistinctStrings(ctx, d.Store.Requests, "batch_id", bson.M{"job_ids": jobID,
		"state": bson.M{"$in": bson.A{store.StateClaimed, store.StateSubmitted}}})
	if err != nil {
		return n, err
	}
	for _, id := range batchIDs {
		others, err := d.Store.Requests.CountDocuments(ctx, bson.M{"batch_id": id, "job_ids": bson.M{"$ne": jobID}})
		if err != nil {
			return n, err
		}
		if others > 0 {
			continue
		}
		if err := d.CancelBatch(ctx, id); err != nil && !errors.Is(err, ErrNotCancellable) {
			return n, err
		}
	}
	return n, nil
}

// ErrNotCancellable is returned for a batch that has already ended.
var ErrNotCancellable = errors.New("the batch has ended; there is nothing left to cancel")

// CancelBatch asks OpenAI to cancel a batch; the poller follows it to cancelled and the applier applies what
// completed and marks the rest cancelled. A batch still being built is marked, and cancelled at OpenAI as
// soon as it is created.
func (d *Deps) CancelBatch(ctx context.Context, batchID string) error {
	b, err := d.Store.Batch(ctx, batchID)
	if err != nil {
		return err
	}
	switch b.State {
	case store.BatchSubmitted:
	case store.BatchClaiming, store.BatchUploading, store.BatchUploaded, store.BatchCreating:
		res, err := d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID, "state": bson.M{"$in": buildStates}},
			bson.M{"$set": bson.M{"cancel_requested": true, "updated_at": d.now()}})
		if err != nil {
			return fmt.Errorf("error marking %s for cancellation: %w", b.ID, err)
		}
		if res.MatchedCount == 0 {
			return d.CancelBatch(ctx, batchID) // it moved on meanwhile
		}
		d.log().Info("batch marked for cancellation; it is cancelled at OpenAI once created", "batch_id", b.ID, "state", b.State)
		return nil
	default:
		return fmt.Errorf("batch %s is %s: %w", b.ID, b.State, ErrNotCancellable)
	}
	if _, err := d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID}, bson.M{"$set": bson.M{"cancel_requested": true, "updated_at": d.now()}}); err != nil {
		return fmt.Errorf("error marking %s for cancellation: %w", b.ID, err)
	}
	ob, err := d.OpenAI.Cancel(ctx, b.OpenAIBatchID)
	if err != nil {
		// The poller retries the cancel at its next visit.
		d.log().Warn("cancel call failed; the poller will retry", "batch_id", b.ID, "error", err)
		return nil
	}
	b.CancelAsked = true
	return d.recordStatus(ctx, b, ob)
}

// RetryJob puts a job's dead and cancelled requests back to pending with fresh attempts.
func (d *Deps) RetryJob(ctx context.Context, jobID string) (int, error) {
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return 0, err
	}
	now := d.now()
	res, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"job_ids": jobID, "state": bson.M{"$in": bson.A{store.StateDead, store.StateCancelled}}},
		bson.M{"$set": bson.M{"state": store.StatePending, "attempts": 0, "updated_at": now}, "$unset": bson.M{"batch_id": "", "settled_at": ""}})
	if err != nil {
		return 0, fmt.Errorf("error retrying requests of %s: %w", jobID, err)
	}
	if res.ModifiedCount == 0 {
		return 0, nil
	}
	if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": bson.M{"$in": bson.A{store.JobDone, store.JobCancelled}}},
		bson.M{"$set": bson.M{"status": store.JobRunning, "updated_at": now}, "$unset": bson.M{"finished_at": ""}}); err != nil {
		return 0, err
	}
	return int(res.ModifiedCount), d.triggerBuild(job.Model, true)
}
