// Package handlers holds the four asynq handlers. They are thin: decode the payload, call the pipeline, and
// translate its errors into asynq's retry decisions.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// Register adds the four handlers to mux.
func Register(mux *asynq.ServeMux, d *pipeline.Deps) {
	mux.HandleFunc(tasks.TypeEnqueueWords, func(ctx context.Context, t *asynq.Task) error {
		p, err := tasks.Decode[tasks.EnqueueWordsPayload](t)
		if err != nil {
			return err
		}
		return outcome(d.Enqueue(ctx, p.JobID))
	})
	mux.HandleFunc(tasks.TypeBuildBatch, func(ctx context.Context, t *asynq.Task) error {
		p, err := tasks.Decode[tasks.BuildBatchPayload](t)
		if err != nil {
			return err
		}
		return outcome(d.Build(ctx, p.Model, p.Flush))
	})
	mux.HandleFunc(tasks.TypePollBatch, func(ctx context.Context, t *asynq.Task) error {
		p, err := tasks.Decode[tasks.PollBatchPayload](t)
		if err != nil {
			return err
		}
		return outcome(d.Poll(ctx, p.BatchID))
	})
	mux.HandleFunc(tasks.TypeApplyResults, func(ctx context.Context, t *asynq.Task) error {
		p, err := tasks.Decode[tasks.ApplyResultsPayload](t)
		if err != nil {
			return err
		}
		return outcome(d.Apply(ctx, p.BatchID))
	})
}

// outcome turns pipeline errors into asynq decisions: an unknown id never heals (archive now); anything else
// is retried with backoff.
func outcome(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// IsFailure tells asynq which errors count against a task's retries: all but ErrBusy, which only means
// "another worker is on it, look again soon".
func IsFailure(err error) bool {
	return !errors.Is(err, pipeline.ErrBusy)
}

// RetryDelay backs off exponentially with jitter, capped, and retries a busy apply soon.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, pipeline.ErrBusy) {
		return 15 * time.Second
	}
	// 1s, 2s, 4s ... capped at a minute: the work behind a failed task (a batch to apply, requests to
	// send) should not wait long once the cause (a slow database, a throttled API) has passed.
	d := time.Second << min(n, 6)
	return min(d+rand.N(d/2+1), time.Minute)
}

// Logging logs each task's outcome with its ids.
func Logging(log *slog.Logger) asynq.MiddlewareFunc {
	return func(h asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := h.ProcessTask(ctx, t)
			id, _ := asynq.GetTaskID(ctx)
			retry, _ := asynq.GetRetryCount(ctx)
			attrs := []any{"type", t.Type(), "task_id", id, "retry", retry, "duration", time.Since(start).Round(time.Millisecond)}
			if err != nil {
				log.Warn("task failed", append(attrs, "error", err)...)
			} else {
				log.Debug("task done", attrs...)
			}
			return err
		})
	}
}
