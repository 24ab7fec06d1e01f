package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// Sweep rebuilds, from MongoDB, every task Redis should be holding, and flushes requests that waited long
// enough. Each enqueue is idempotent (task ids, unique locks), so a sweep that finds nothing amiss is cheap
// and one that runs twice changes nothing.
func Sweep(ctx context.Context, d *pipeline.Deps) error {
	now := time.Now().UTC()
	cfg := d.Config
	var errs []error

	// 1. Pending requests: one build per model whose oldest request waited past the flush delay. While a
	// job is still expanding, its requests are not flushed piecemeal: the expansion triggers the build when
	// it ends, so a big job goes out in full batches rather than many small ones.
	expanding, err := d.Store.CountExpandingJobs(ctx, now.Add(-cfg.StaleAfter))
	if err != nil {
		return err
	}
	models, err := d.Store.PendingModels(ctx)
	if err != nil {
		return err
	}
	if expanding > 0 {
		models = nil
	}
	for _, m := range models {
		oldest, err := d.Store.OldestPendingUpdate(ctx, m)
		if err != nil {
			continue
		}
		// A build that is running drains the model's pending requests itself (it loops until none is left), so
		// a flush now would only queue a task that finds the model's lock taken.
		if now.Sub(oldest) >= cfg.FlushDelay && !d.BuildRunning(ctx, m) {
			errs = append(errs, enqueueBuild(d, m))
		}
	}

	// 2. Batches a builder left half-way (its lease ran out): resume them.
	stuck, err := d.Store.ModelsOfLapsedBuilds(ctx, now)
	errs = append(errs, err)
	for _, m := range stuck {
		errs = append(errs, enqueueBuild(d, m))
	}

	// 3. Terminal batches not yet applied: hand them to apply (the task id keeps it to one).
	if ids, err := d.Store.LapsedTerminalBatchIDs(ctx, now); err == nil {
		for _, id := range ids {
			t, _ := tasks.NewApplyResultsTask(id)
			errs = append(errs, enqueueFixedID(d, t, tasks.QueueApply, tasks.TypeApplyResults+":"+id))
		}
	}

	// 4. Jobs whose expansion stalled (enqueue task lost with Redis, or still failing).
	if ids, err := d.Store.StalledJobIDs(ctx, now.Add(-cfg.StaleAfter)); err == nil {
		for _, id := range ids {
			t, _ := tasks.NewEnqueueWordsTask(id)
			errs = append(errs, enqueueFixedID(d, t, tasks.QueueEnqueue, tasks.TypeEnqueueWords+":"+id))
		}
	}

	// 5. Requests claimed by a batch that will never be sent (abandoned, or its document is gone).
	claimedBy, err := d.Store.StaleClaimBatchIDs(ctx, now.Add(-cfg.StaleAfter))
	errs = append(errs, err)
	for _, id := range claimedBy {
		b, err := d.Store.Batch(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			continue
		}
		if b == nil || b.State == store.BatchAbandoned {
			_, err := d.Store.ReleaseOrphanedClaims(ctx, id, now)
			errs = append(errs, err)
		}
	}

	// 6. Running jobs: marking finished ones done keeps status reads cheap.
	if ids, err := d.Store.RunningJobIDs(ctx, 200); err == nil {
		for _, id := range ids {
			_, err := d.FinishIfDone(ctx, id)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func enqueueBuild(d *pipeline.Deps, model string) error {
	t, err := tasks.NewBuildBatchTask(model, true)
	if err != nil {
		return err
	}
	return tasks.Enqueue(d.Queue, t)
}

// enqueueFixedID enqueues a task that has a fixed id (queue, id). An archived task of that id (its retries ran
// out, say through a long MongoDB outage) would block the enqueue for as long as asynq keeps it, stranding
// its batch or job for good: it is deleted first. A task that is pending, scheduled, retrying or active is
// left alone, and the enqueue is then a no-op.
func enqueueFixedID(d *pipeline.Deps, t *asynq.Task, queue, id string) error {
	if d.Redis != nil {
		insp := asynq.NewInspectorFromRedisClient(d.Redis)
		if info, err := insp.GetTaskInfo(queue, id); err == nil && info.State == asynq.TaskStateArchived {
			if err := insp.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("error deleting archived task %s: %w", id, err)
			}
		}
	}
	return tasks.Enqueue(d.Queue, t)
}
