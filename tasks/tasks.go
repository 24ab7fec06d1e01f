// Package tasks declares batchsynth's asynq task types, their payloads and constructors. The main app imports it
// to enqueue work; payloads carry ids only, never bulk data (words live in MongoDB).
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names. They are permanent: renaming one strands the tasks already queued under the old name.
const (
	TypeEnqueueWords = "enqueue-words"
	TypeBuildBatch   = "build-batch"
	TypePollBatch    = "poll-batch"
	TypeApplyResults = "apply-results"
)

// Queues. Polls and applies get their own queues with higher weights so that a backlog of enqueues never
// starves the work that finishes batches (and frees the enqueued-token budget).
const (
	QueuePoll    = "poll"
	QueueApply   = "apply"
	QueueBuild   = "build"
	QueueEnqueue = "enqueue"
)

// QueueWeights is the asynq.Config.Queues map every worker uses.
func QueueWeights() map[string]int {
	return map[string]int{QueuePoll: 6, QueueApply: 6, QueueBuild: 3, QueueEnqueue: 2}
}

// EnqueueWordsPayload names a synthesis_jobs document whose inputs are stored in MongoDB.
type EnqueueWordsPayload struct {
	JobID string `json:"job_id"`
}

// BuildBatchPayload asks for pending requests of one model to be packed into batches.
type BuildBatchPayload struct {
	Model string `json:"model"`
	// Flush builds even a small batch now instead of waiting for the flush delay.
	Flush bool `json:"flush,omitempty"`
}

// PollBatchPayload and ApplyResultsPayload name a synthesis_batches document (our id, not OpenAI's).
type PollBatchPayload struct {
	BatchID string `json:"batch_id"`
}

type ApplyResultsPayload struct {
	BatchID string `json:"batch_id"`
}

// NewEnqueueWordsTask uses a task id derived from the job so that submitting the same job twice queues it once.
func NewEnqueueWordsTask(jobID string) (*asynq.Task, error) {
	if jobID == "" {
		return nil, fmt.Errorf("enqueue-words: empty job id")
	}
	b, _ := json.Marshal(EnqueueWordsPayload{JobID: jobID})
	return asynq.NewTask(TypeEnqueueWords, b,
		asynq.Queue(QueueEnqueue), asynq.TaskID(TypeEnqueueWords+":"+jobID),
		asynq.MaxRetry(10), asynq.Timeout(30*time.Minute)), nil
}

// NewBuildBatchTask is unique per (model, flush) for a short while: a burst of triggers becomes one build,
// and the builder drains everything pending for the model, so a dropped duplicate loses nothing.
func NewBuildBatchTask(model string, flush bool) (*asynq.Task, error) {
	if model == "" {
		return nil, fmt.Errorf("build-batch: empty model")
	}
	b, _ := json.Marshal(BuildBatchPayload{Model: model, Flush: flush})
	return asynq.NewTask(TypeBuildBatch, b,
		asynq.Queue(QueueBuild), asynq.Unique(5*time.Second),
		asynq.MaxRetry(20), asynq.Timeout(30*time.Minute)), nil
}

// NewPollBatchTask is unique for interval so that a slow poll never piles up behind periodic ticks.
func NewPollBatchTask(batchID string, interval time.Duration) (*asynq.Task, error) {
	if batchID == "" {
		return nil, fmt.Errorf("poll-batch: empty batch id")
	}
	if interval < time.Second {
		interval = time.Second
	}
	b, _ := json.Marshal(PollBatchPayload{BatchID: batchID})
	return asynq.NewTask(TypePollBatch, b,
		asynq.Queue(QueuePoll), asynq.Unique(interval),
		asynq.MaxRetry(3), asynq.Timeout(2*time.Minute)), nil
}

// NewApplyResultsTask uses a task id derived from the batch id: one apply per batch is queued at a time.
func NewApplyResultsTask(batchID string) (*asynq.Task, error) {
	if batchID == "" {
		return nil, fmt.Errorf("apply-results: empty batch id")
	}
	b, _ := json.Marshal(ApplyResultsPayload{BatchID: batchID})
	return asynq.NewTask(TypeApplyResults, b,
		asynq.Queue(QueueApply), asynq.TaskID(TypeApplyResults+":"+batchID),
		asynq.MaxRetry(25), asynq.Timeout(30*time.Minute)), nil
}

// Decode unmarshals a task payload, wrapping failures in asynq.SkipRetry: a malformed payload never heals.
func Decode[T any](t *asynq.Task) (T, error) {
	var p T
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("%s: malformed payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return p, nil
}

// Enqueue enqueues t and treats "already queued" (same task id or unique lock held) as success.
func Enqueue(c *asynq.Client, t *asynq.Task, opts ...asynq.Option) error {
	_, err := c.Enqueue(t, opts...)
	if err == nil || isDuplicate(err) {
		return nil
	}
	return fmt.Errorf("enqueue %s: %w", t.Type(), err)
}

func isDuplicate(err error) bool {
	return errors.Is(err, asynq.ErrDuplicateTask) || errors.Is(err, asynq.ErrTaskIDConflict)
}
