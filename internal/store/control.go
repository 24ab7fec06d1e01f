package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The moves a user's actions make (cancel a job or a batch, retry a job, submit one). The rules of when
// each applies are pipeline's (rules.go); these only move what their compare-and-set filters still match.

// InputChunk is how many words one synthesis_job_inputs document holds.
const InputChunk = 1000

// InsertJob stores a new job and its words, in InputChunk words per input document. Inputs go first and the
// job last: a job document always has all its inputs. The job id is new, so its inputs are plain inserts
// (one command per 50 chunks): nothing can hold their ids yet.
func (s *Store) InsertJob(ctx context.Context, job *Job, words []InputWord) error {
	var models []mongo.WriteModel
	for seq := 0; seq < job.Chunks; seq++ {
		end := min((seq+1)*InputChunk, len(words))
		models = append(models, mongo.NewInsertOneModel().
			SetDocument(JobInput{ID: fmt.Sprintf("%s:%d", job.ID, seq), JobID: job.ID, Seq: seq, Words: words[seq*InputChunk : end]}))
		if len(models) == 50 || seq == job.Chunks-1 {
			if err := s.bulkWrite(ctx, s.inputs, models, false); err != nil {
				return fmt.Errorf("error storing job inputs: %w", err)
			}
			models = models[:0]
		}
	}
	if _, err := s.jobs.InsertOne(ctx, job); err != nil {
		return fmt.Errorf("error storing job: %w", err)
	}
	return nil
}

// CancelJob moves a job that has not ended to cancelled. It reports whether this call moved it.
func (s *Store) CancelJob(ctx context.Context, jobID string, now time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": jobMove(JobCancelled, JobSubmitted, JobExpanding, JobRunning)},
		bson.M{"$set": bson.M{"status": JobCancelled, "updated_at": now, "finished_at": now}})
	if err != nil {
		return false, fmt.Errorf("error cancelling job %s: %w", jobID, err)
	}
	return res.ModifiedCount > 0, nil
}

// CancelPendingOfJob cancels the pending requests that only jobID follows, and returns how many it moved.
// Requests shared with other jobs go on for them.
func (s *Store) CancelPendingOfJob(ctx context.Context, jobID, reason string, now time.Time) (int, error) {
	// {job_ids: [jobID]} matches the whole array: only requests no other job follows.
	res, err := s.updateMany(ctx, s.requests, bson.M{"job_ids": bson.A{jobID}, "state": requestMove(StateCancelled, StatePending)},
		bson.M{"$set": bson.M{"state": StateCancelled, "last_error": reason, "settled_at": now, "updated_at": now}})
	if err != nil {
		return 0, fmt.Errorf("error cancelling requests of %s: %w", jobID, err)
	}
	return int(res.ModifiedCount), nil
}

// InFlightBatchesOfJob lists the batch documents holding requests of jobID that are claimed or submitted.
func (s *Store) InFlightBatchesOfJob(ctx context.Context, jobID string) ([]string, error) {
	return distinctStrings(ctx, s.requests, "batch_id", bson.M{"job_ids": jobID,
		"state": bson.M{"$in": bson.A{StateClaimed, StateSubmitted}}})
}

// BatchServesOthers reports whether batch document batchID holds a request that a job other than jobID follows.
func (s *Store) BatchServesOthers(ctx context.Context, batchID, jobID string) (bool, error) {
	n, err := s.requests.CountDocuments(ctx, bson.M{"batch_id": batchID, "job_ids": bson.M{"$ne": jobID}})
	if err != nil {
		return false, fmt.Errorf("error reading the requests of batch %s: %w", batchID, err)
	}
	return n > 0, nil
}

// RequestBatchCancel sets cancel_requested on batch document batchID if it is still in one of states (a flag
// the builder and the poller act on, not a move). It reports whether the document matched.
func (s *Store) RequestBatchCancel(ctx context.Context, batchID string, states []BatchState, now time.Time) (bool, error) {
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": batchID, "state": stateIn(states)},
		bson.M{"$set": bson.M{"cancel_requested": true, "updated_at": now}})
	if err != nil {
		return false, fmt.Errorf("error marking %s for cancellation: %w", batchID, err)
	}
	return res.MatchedCount > 0, nil
}

// RetryRequestsOfJob puts the dead and cancelled requests of jobID back to pending with fresh attempts, and
// returns how many it moved.
func (s *Store) RetryRequestsOfJob(ctx context.Context, jobID string, now time.Time) (int, error) {
	res, err := s.updateMany(ctx, s.requests, bson.M{"job_ids": jobID, "state": requestMove(StatePending, StateDead, StateCancelled)},
		bson.M{"$set": bson.M{"state": StatePending, "attempts": 0, "updated_at": now}, "$unset": bson.M{"batch_id": "", "settled_at": ""}})
	if err != nil {
		return 0, fmt.Errorf("error retrying requests of %s: %w", jobID, err)
	}
	return int(res.ModifiedCount), nil
}

// ReopenJob moves a done or cancelled job back to running (its requests were put back). It reports whether
// this call moved it.
func (s *Store) ReopenJob(ctx context.Context, jobID string, now time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": jobMove(JobRunning, JobDone, JobCancelled)},
		bson.M{"$set": bson.M{"status": JobRunning, "updated_at": now}, "$unset": bson.M{"finished_at": ""}})
	if err != nil {
		return false, fmt.Errorf("error reopening job %s: %w", jobID, err)
	}
	return res.ModifiedCount > 0, nil
}
