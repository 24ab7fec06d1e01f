package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// Traffic is what a run cost in asynq tasks and OpenAI calls.
type Traffic struct {
	// Tasks counts processed tasks by queue (each queue carries one task type: enqueue-words, build-batch,
	// poll-batch, apply-results), as asynq's own statistics count them (ProcessedTotal, including failed
	// attempts); Failed counts the failed attempts among them.
	Tasks, Failed map[string]int
	// Calls counts emulator HTTP requests by route.
	Calls map[string]int64
	// Batches is the number of batch documents; Polls the poll_count summed over them; ErrorFiles the
	// batches with an error file.
	Batches, Polls, ErrorFiles int
}

// WaitQueuesIdle waits (up to timeout) until no enqueue, build or apply task is pending, active or waiting
// for a retry, and the apply queue has processed at least applies tasks: a job counts as finished once its
// writes are done, a moment before asynq records its apply task as processed.
func WaitQueuesIdle(rc redis.UniversalClient, applies int, timeout time.Duration) error {
	in := asynq.NewInspectorFromRedisClient(rc)
	deadline := time.Now().Add(timeout)
	for {
		busy := ""
		for _, q := range []string{tasks.QueueEnqueue, tasks.QueueBuild, tasks.QueueApply} {
			info, err := in.GetQueueInfo(q)
			if err != nil {
				continue
			}
			if info.Pending+info.Active+info.Retry > 0 {
				busy = fmt.Sprintf("%s: %d pending, %d active, %d retry", q, info.Pending, info.Active, info.Retry)
			}
			if q == tasks.QueueApply && info.ProcessedTotal < applies {
				busy = fmt.Sprintf("apply: %d processed of %d", info.ProcessedTotal, applies)
			}
		}
		if busy == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queues still busy after %s: %s", timeout, busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MeasureTraffic reads asynq's per-queue statistics from rc, the emulator's request counters and the
// batch documents.
func MeasureTraffic(ctx context.Context, rc redis.UniversalClient, emu *emulator.Server, st *store.Store) (Traffic, error) {
	t := Traffic{Tasks: map[string]int{}, Failed: map[string]int{}, Calls: map[string]int64{}}
	in := asynq.NewInspectorFromRedisClient(rc)
	for _, q := range []string{tasks.QueueEnqueue, tasks.QueueBuild, tasks.QueuePoll, tasks.QueueApply} {
		info, err := in.GetQueueInfo(q)
		if err != nil {
			if strings.Contains(err.Error(), "not found") {
				continue
			}
			return t, fmt.Errorf("queue %s: %w", q, err)
		}
		t.Tasks[q], t.Failed[q] = info.ProcessedTotal, info.FailedTotal
	}
	for k, v := range emu.Stats().Requests {
		t.Calls[k] = v
	}
	cur, err := st.Collection(store.CollBatches).Find(ctx, bson.M{})
	if err != nil {
		return t, err
	}
	var bs []store.Batch
	if err := cur.All(ctx, &bs); err != nil {
		return t, err
	}
	for _, b := range bs {
		t.Batches++
		t.Polls += b.PollCount
		if b.ErrorFileID != "" {
			t.ErrorFiles++
		}
	}
	return t, nil
}

// Routes of the emulator that are polls of a batch.
const RoutePoll = "GET /v1/batches/{batch_id}"

// NonPollTasks is every processed task but the polls.
func (t Traffic) NonPollTasks() int {
	n := 0
	for q, v := range t.Tasks {
		if q != tasks.QueuePoll {
			n += v
		}
	}
	return n
}

// NonPollCalls is every OpenAI call but the batch retrievals.
func (t Traffic) NonPollCalls() int64 {
	var n int64
	for r, v := range t.Calls {
		if r != RoutePoll {
			n += v
		}
	}
	return n
}

func (t Traffic) String() string {
	var qs, rs []string
	for q, v := range t.Tasks {
		qs = append(qs, fmt.Sprintf("%s=%d (failed %d)", q, v, t.Failed[q]))
	}
	for r, v := range t.Calls {
		rs = append(rs, fmt.Sprintf("%q=%d", r, v))
	}
	sort.Strings(qs)
	sort.Strings(rs)
	return fmt.Sprintf("tasks: %s; OpenAI calls: %s; batches %d (with error file %d), polls recorded %d",
		strings.Join(qs, " "), strings.Join(rs, " "), t.Batches, t.ErrorFiles, t.Polls)
}
