package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	expanding, err := d.Store.Jobs.CountDocuments(ctx, bson.M{"status": store.JobExpanding, "updated_at": bson.M{"$gt": now.Add(-cfg.StaleAfter)}})
	if err != nil {
		return fmt.Errorf("error counting expanding jobs: %w", err)
	}
	models, err := store.DistinctStrings(ctx, d.Store.Requests, "model", bson.M{"state": store.StatePending})
	if err != nil {
		return err
	}
	if expanding > 0 {
		models = nil
	}
	for _, m := range models {
		var oldest store.Request
		err := d.Store.Requests.FindOne(ctx, bson.M{"state": store.StatePending, "model": m},
			options.FindOne().SetSort(bson.D{{Key: "updated_at", Value: 1}}).SetProjection(bson.M{"updated_at": 1})).Decode(&oldest)
		if err != nil {
			continue
		}
		if now.Sub(oldest.UpdatedAt) >= cfg.FlushDelay {
			errs = append(errs, enqueueBuild(d, m))
		}
	}

	// 2. Batches a builder left half-way (its lease ran out): resume them.
	stuck, err := store.DistinctStrings(ctx, d.Store.Batches, "model", bson.M{
		"state":       bson.M{"$in": bson.A{store.BatchClaiming, store.BatchUploading, store.BatchUploaded, store.BatchCreating}},
		"lease_until": bson.M{"$lt": now},
	})
	errs = append(errs, err)
	for _, m := range stuck {
		errs = append(errs, enqueueBuild(d, m))
	}

	// 3. Terminal batches not yet applied: hand them to apply (the task id keeps it to one).
	c2, err := d.Store.Batches.Find(ctx, bson.M{"state": store.BatchTerminal, "lease_until": bson.M{"$lt": now}},
		options.Find().SetProjection(bson.M{"_id": 1}))
	if err == nil {
		var rows []struct {
			ID string `bson:"_id"`
		}
		if err := c2.All(ctx, &rows); err == nil {
			for _, r := range rows {
				t, _ := tasks.NewApplyResultsTask(r.ID)
				errs = append(errs, enqueueFixedID(d, t, tasks.QueueApply, tasks.TypeApplyResults+":"+r.ID))
			}
		}
	}

	// 4. Jobs whose expansion stalled (enqueue task lost with Redis, or still failing).
	c3, err := d.Store.Jobs.Find(ctx, bson.M{"status": bson.M{"$in": bson.A{store.JobSubmitted, store.JobExpanding}},
		"updated_at": bson.M{"$lt": now.Add(-cfg.StaleAfter)}}, options.Find().SetProjection(bson.M{"_id": 1}))
	if err == nil {
		var rows []struct {
			ID string `bson:"_id"`
		}
		if err := c3.All(ctx, &rows); err == nil {
			for _, r := range rows {
				t, _ := tasks.NewEnqueueWordsTask(r.ID)
				errs = append(errs, enqueueFixedID(d, t, tasks.QueueEnqueue, tasks.TypeEnqueueWords+":"+r.ID))
			}
		}
	}

	// 5. Requests claimed by a batch that will never be sent (abandoned, or its document is gone).
	claimedBy, err := store.DistinctStrings(ctx, d.Store.Requests, "batch_id", bson.M{"state": store.StateClaimed,
		"updated_at": bson.M{"$lt": now.Add(-cfg.StaleAfter)}})
	errs = append(errs, err)
	{
		for _, id := range claimedBy {
			b, err := d.Store.Batch(ctx, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				continue
			}
			if b == nil || b.State == store.BatchAbandoned {
				_, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"batch_id": id, "state": store.StateClaimed},
					bson.M{"$set": bson.M{"state": store.StatePending, "updated_at": now}, "$unset": bson.M{"batch_id": ""}, "$inc": bson.M{"attempts": -1}})
				errs = append(errs, err)
			}
		}
	}

	// 6. Running jobs: marking finished ones done keeps status reads cheap.
	c4, err := d.Store.Jobs.Find(ctx, bson.M{"status": store.JobRunning}, options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(200))
	if err == nil {
		var rows []struct {
			ID string `bson:"_id"`
		}
		if err := c4.All(ctx, &rows); err == nil {
			for _, r := range rows {
				_, err := d.FinishIfDone(ctx, r.ID)
				errs = append(errs, err)
			}
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
