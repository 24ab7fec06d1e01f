package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
)

// idempotencyTTL is how long a submission's Idempotency-Key is remembered: longer than any client's retries.
const idempotencyTTL = 24 * time.Hour

// jobAccepted is the 202 answer to a submission.
type jobAccepted struct {
	JobID       string             `json:"job_id"`
	Status      string             `json:"status"`
	Words       int                `json:"words"`
	Path        string             `json:"path"`
	InputErrors []store.InputError `json:"input_errors"`
}

func (s *Server) pathOf(priority string, words int) string {
	if pipeline.ImmediateFor(s.Deps.Config, priority, words) {
		return "immediate"
	}
	return "batch"
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sub, err := s.readSubmission(w, r)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	idemKey := ""
	if k := r.Header.Get("Idempotency-Key"); k != "" && s.Redis != nil {
		if len(k) > 255 {
			writeError(w, http.StatusBadRequest, "invalid_field", "Idempotency-Key", "at most 255 characters")
			return
		}
		sum := sha256.Sum256([]byte(k))
		idemKey = "batchsynth:idempotency:" + hex.EncodeToString(sum[:])
		fresh, err := s.Redis.SetNX(ctx, idemKey, "", idempotencyTTL).Result()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !fresh {
			s.replay(w, r, idemKey)
			return
		}
	}
	job, err := s.Deps.Submit(ctx, *sub)
	if err != nil && job == nil {
		if idemKey != "" {
			_ = s.Redis.Del(context.WithoutCancel(ctx), idemKey).Err()
		}
		s.fail(w, r, err)
		return
	}
	if err != nil {
		// Stored, so it will run: the sweep enqueues jobs whose enqueue was lost.
		s.Log.Warn("job stored but not enqueued; the sweep will enqueue it", "job_id", job.ID, "error", err)
	}
	if idemKey != "" {
		_ = s.Redis.Set(context.WithoutCancel(ctx), idemKey, job.ID, redis.KeepTTL).Err()
	}
	s.changed()
	path := s.pathOf(job.Priority, job.WordsTotal)
	s.Log.Info("job accepted", "job_id", job.ID, "words", job.WordsTotal, "input_errors", len(sub.Errors),
		"components", job.Components, "priority", job.Priority, "path", path, "source", job.Source)
	w.Header().Set("Location", "/v1/jobs/"+job.ID)
	writeJSON(w, http.StatusAccepted, jobAccepted{JobID: job.ID, Status: string(job.Status), Words: job.WordsTotal, Path: path, InputErrors: sub.Errors})
}

// replay answers a repeated Idempotency-Key with the job the first request created.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, key string) {
	id, err := s.Redis.Get(r.Context(), key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		s.fail(w, r, err)
		return
	}
	if id == "" {
		writeError(w, http.StatusConflict, "in_progress", "Idempotency-Key", "a submission with this key is being stored; retry in a moment")
		return
	}
	job, err := s.Deps.Store.Job(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+job.ID)
	w.Header().Set("Idempotent-Replayed", "true")
	writeJSON(w, http.StatusAccepted, jobAccepted{JobID: job.ID, Status: string(job.Status), Words: job.WordsTotal,
		Path: s.pathOf(job.Priority, job.WordsTotal), InputErrors: job.InputErrors})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	p, err := s.Deps.Progress(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// listLimit reads ?limit=, bounded.
func listLimit(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return listLimitDefault, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > listLimitMax {
		return 0, badField("limit", "want 1..%d, got %q", listLimitMax, v)
	}
	return int64(n), nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	limit, err := listLimit(r)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	st := store.JobStatus(r.URL.Query().Get("status"))
	if st != "" && !slices.Contains(store.JobStatuses, st) {
		writeError(w, http.StatusBadRequest, "invalid_field", "status", "want submitted, expanding, running, done or cancelled")
		return
	}
	jobs, err := s.Deps.Store.RecentJobs(r.Context(), store.JobFilter{Status: st, Brief: true}, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": jobs})
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := s.Deps.CancelJob(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.changed()
	s.Log.Info("job cancelled through the API", "job_id", id, "cancelled_requests", n)
	writeJSON(w, http.StatusOK, map[string]any{"job_id": id, "status": store.JobCancelled, "cancelled_requests": n})
}

func (s *Server) retryJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := s.Deps.RetryJob(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.changed()
	s.Log.Info("job retried through the API", "job_id", id, "requeued_requests", n)
	writeJSON(w, http.StatusOK, map[string]any{"job_id": id, "requeued_requests": n})
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	limit, err := listLimit(r)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	filter := store.BatchFilter{State: store.BatchState(r.URL.Query().Get("state"))}
	bs, err := s.Deps.RecentBatches(r.Context(), filter, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if bs == nil {
		bs = []pipeline.BatchStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": bs})
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.Deps.BatchStatus(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	if err := s.Deps.CancelBatch(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	s.changed()
	// The answer names our id even when the caller gave OpenAI's.
	b, err := s.Deps.Store.Batch(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("batch cancel requested through the API", "batch_id", b.ID, "state", b.State, "openai_batch_id", b.OpenAIBatchID)
	writeJSON(w, http.StatusAccepted, map[string]any{"batch_id": b.ID, "cancel_requested": true})
}

// statsBody is GET /v1/stats: the fleet-wide numbers the dashboard and /metrics show.
type statsBody struct {
	*metricsSnapshot
	SpentUSD       float64 `json:"spent_usd"`
	SavedUSD       float64 `json:"saved_usd"`
	PollLagSeconds float64 `json:"poll_lag_seconds"`
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	snap, err := s.Metrics.Snapshot(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, statsBody{metricsSnapshot: snap, SpentUSD: snap.SpentUSD(), SavedUSD: snap.SavedUSD(), PollLagSeconds: snap.PollLag.Seconds()})
}
