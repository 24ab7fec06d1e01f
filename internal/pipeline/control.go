package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// CancelJob stops a job: its pending requests are cancelled, and batches that carry only its requests are
// cancelled at OpenAI (what completed in them is still applied). Requests shared with other jobs go on. A job
// that is done or already cancelled is ErrJobFinished: cancelling it would relabel a finished job.
func (d *Deps) CancelJob(ctx context.Context, jobID string) (int, error) {
	unlock, err := d.lockJob(ctx, jobID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return 0, err
	}
	if job.Status == store.JobRunning {
		// Finished but not yet recorded (only the sweep marks a job done): as finished as a done job.
		left, err := d.Store.JobHasWorkLeft(ctx, job.ID)
		if err != nil {
			return 0, err
		}
		if !left {
			return 0, fmt.Errorf("job %s has finished: %w", job.ID, ErrJobFinished)
		}
	}
	now := d.now()
	for !job.Status.Finished() {
		moved, err := d.Store.CancelJob(ctx, job.ID, now)
		if err != nil {
			return 0, err
		}
		if moved {
			break
		}
		// It moved on meanwhile (expanded, or the sweep found it done): judge it again.
		if job, err = d.Store.Job(ctx, jobID); err != nil {
			return 0, err
		}
		if job.Status.Finished() {
			return 0, fmt.Errorf("job %s is %s: %w", job.ID, job.Status, ErrJobFinished)
		}
	}
	if job.Status.Finished() {
		if job.Status == store.JobCancelled {
			// A cancel that died after moving the job left its pending requests behind; finishing it here
			// keeps a repeated cancel from being the only way they would ever stop.
			if _, err := d.Store.CancelPendingOfJob(ctx, job.ID, "job cancelled", now); err != nil {
				return 0, err
			}
		}
		return 0, fmt.Errorf("job %s is %s: %w", job.ID, job.Status, ErrJobFinished)
	}
	n, err := d.Store.CancelPendingOfJob(ctx, job.ID, "job cancelled", now)
	if err != nil {
		return 0, err
	}
	batchIDs, err := d.Store.InFlightBatchesOfJob(ctx, job.ID)
	if err != nil {
		return n, err
	}
	for _, id := range batchIDs {
		others, err := d.Store.BatchServesOthers(ctx, id, job.ID)
		if err != nil {
			return n, err
		}
		if others {
			continue
		}
		if err := d.CancelBatch(ctx, id); err != nil && !errors.Is(err, ErrNotCancellable) {
			return n, err
		}
	}
	return n, nil
}

// CancelBatch asks OpenAI to cancel a batch; the poller follows it to cancelled and the applier applies what
// completed and marks the rest cancelled. A batch still being built is marked, and cancelled at OpenAI as
// soon as it is created. A batch that has ended is ErrNotCancellable.
func (d *Deps) CancelBatch(ctx context.Context, batchID string) error {
	b, err := d.Store.Batch(ctx, batchID)
	if err != nil {
		return err
	}
	switch {
	case b.State == store.BatchSubmitted:
	case b.State.Building():
		marked, err := d.Store.RequestBatchCancel(ctx, b.ID, store.BuildStates, d.now())
		if err != nil {
			return err
		}
		if !marked {
			return d.CancelBatch(ctx, batchID) // it moved on meanwhile
		}
		d.log().Info("batch marked for cancellation; it is cancelled at OpenAI once created", "batch_id", b.ID, "state", b.State)
		return nil
	default:
		return fmt.Errorf("batch %s is %s: %w", b.ID, b.State, ErrNotCancellable)
	}
	marked, err := d.Store.RequestBatchCancel(ctx, b.ID, []store.BatchState{store.BatchSubmitted}, d.now())
	if err != nil {
		return err
	}
	if !marked {
		return d.CancelBatch(ctx, batchID) // it ended meanwhile
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

// RetryJob puts a job's dead and cancelled requests back to pending with fresh attempts, and a done or
// cancelled job back to running. With nothing to retry it changes nothing and returns 0.
func (d *Deps) RetryJob(ctx context.Context, jobID string) (int, error) {
	unlock, err := d.lockJob(ctx, jobID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return 0, err
	}
	now := d.now()
	n, err := d.Store.RetryRequestsOfJob(ctx, job.ID, now)
	if err != nil || n == 0 {
		return 0, err
	}
	if _, err := d.Store.ReopenJob(ctx, job.ID, now); err != nil {
		return 0, err
	}
	// A job on "auto" has requests of each of its tiers' models, and builds are per model.
	for _, m := range synthesis.Models(job.Model, job.Components) {
		if err := d.triggerBuild(m, true); err != nil {
			return n, err
		}
	}
	return n, nil
}
