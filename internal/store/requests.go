package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Expansion: a job's stored words become requests. The job moves submitted -> expanding -> running; each input
// chunk is recorded once.

// StartExpansion moves job jobID from submitted to expanding, and reports whether it moved.
func (s *Store) StartExpansion(ctx context.Context, jobID string, at time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": jobMove(JobExpanding, JobSubmitted)},
		bson.M{"$set": bson.M{"status": JobExpanding, "updated_at": at}})
	if err != nil {
		return false, fmt.Errorf("error starting job %s: %w", jobID, err)
	}
	return res.ModifiedCount > 0, nil
}

// FinishExpansion moves job jobID from expanding to running, and reports whether it moved.
func (s *Store) FinishExpansion(ctx context.Context, jobID string, at time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": jobMove(JobRunning, JobExpanding)},
		bson.M{"$set": bson.M{"status": JobRunning, "expanded_at": at, "updated_at": at}})
	if err != nil {
		return false, fmt.Errorf("error finishing expansion of job %s: %w", jobID, err)
	}
	return res.ModifiedCount > 0, nil
}

// JobInputChunk loads input chunk seq of job jobID.
func (s *Store) JobInputChunk(ctx context.Context, jobID string, seq int) (*JobInput, error) {
	id := fmt.Sprintf("%s:%d", jobID, seq)
	var in JobInput
	err := s.inputs.FindOne(ctx, bson.M{"_id": id}).Decode(&in)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("input chunk %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// ExpandedChunk is what expanding one input chunk of a job found.
type ExpandedChunk struct {
	Seq          int
	Definitions  int          // definitions considered
	WordsMissing []string     // plain-text words not in Floridify
	InputErrors  []InputError // words that could not be planned
}

// RecordExpandedChunk adds an expanded chunk to its job's counts, and reports whether it was not recorded yet.
func (s *Store) RecordExpandedChunk(ctx context.Context, jobID string, c ExpandedChunk, at time.Time) (bool, error) {
	upd := bson.M{
		"$addToSet": bson.M{"expanded": c.Seq},
		"$inc":      bson.M{"definitions": c.Definitions},
		"$set":      bson.M{"updated_at": at},
	}
	push := bson.M{}
	if len(c.WordsMissing) > 0 {
		push["words_missing"] = bson.M{"$each": c.WordsMissing}
	}
	if len(c.InputErrors) > 0 {
		push["input_errors"] = bson.M{"$each": c.InputErrors}
	}
	if len(push) > 0 {
		upd["$push"] = push
	}
	// The filter makes the $inc and $push happen once per chunk even if two runs race.
	res, err := s.jobs.UpdateOne(ctx, bson.M{"_id": jobID, "expanded": bson.M{"$ne": c.Seq}}, upd)
	if err != nil {
		return false, fmt.Errorf("error recording chunk %d of job %s: %w", c.Seq, jobID, err)
	}
	return res.ModifiedCount > 0, nil
}

// NewRequest is a request to create, with its rendered body.
type NewRequest struct {
	ID            string
	JobID         string // the job that creates it, its first follower
	Kind          string
	WordID        ObjectID
	Word          string
	DefinitionIDs []ObjectID
	Components    []string
	Mode          string
	PromptVersion string
	Model         string
	Force         bool
	Body          []byte
	BodyHash      string
	// Token estimates of the body and of its answer.
	InputTokensEst, OutputTokensEst int64
	// CachedFrom names the succeeded request whose answer (Result) this one reuses: the request is created
	// succeeded with that answer, to be applied at once. An existing request keeps its own state.
	CachedFrom string
	Result     string
}

// InsertRequests creates the requests reqs that do not exist yet (bodies first) and returns the ids of those
// that did.
func (s *Store) InsertRequests(ctx context.Context, reqs []NewRequest, at time.Time) (existing []string, err error) {
	models := make([]mongo.WriteModel, 0, len(reqs))
	bodies := make([]RequestBody, 0, len(reqs))
	for _, r := range reqs {
		doc := bson.M{
			"kind": r.Kind, "word_id": r.WordID, "word": r.Word, "definition_ids": r.DefinitionIDs,
			"components": r.Components, "mode": r.Mode, "prompt_version": r.PromptVersion,
			"model": r.Model, "force": r.Force, "state": StatePending, "attempts": 0,
			"body_hash": r.BodyHash, "body_bytes": len(r.Body),
			"input_tokens_est": r.InputTokensEst, "output_tokens_est": r.OutputTokensEst,
			"usage": Usage{}, "cost_usd": 0.0, "applied": false,
			"created_at": at, "updated_at": at,
		}
		if r.CachedFrom != "" {
			doc["state"] = StateSucceeded
			doc["result"] = r.Result
			doc["cached_from"] = r.CachedFrom
			doc["settled_at"] = at
		}
		doc["_id"], doc["job_ids"] = r.ID, []string{r.JobID}
		models = append(models, mongo.NewInsertOneModel().SetDocument(doc))
		bodies = append(bodies, RequestBody{ID: r.ID, Body: string(r.Body)})
	}
	// Bodies first, so that no request is ever without its body.
	if err := s.InsertBodies(ctx, bodies); err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, nil
	}
	// Insert-if-absent: the deterministic _id refuses a piece that is already requested. One insert command
	// for the chunk (and FollowRequests for the pieces that existed) is far cheaper than an upsert per request.
	if err := s.bulkWrite(ctx, s.requests, models, false); err != nil {
		dups, ok := duplicateIndexes(err)
		if !ok {
			return nil, fmt.Errorf("error writing requests: %w", err)
		}
		for _, i := range dups {
			existing = append(existing, reqs[i].ID)
		}
	}
	return existing, nil
}

// FollowRequests makes job jobID follow the requests ids, which it then counts as its own.
func (s *Store) FollowRequests(ctx context.Context, jobID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.updateMany(ctx, s.requests, bson.M{"_id": bson.M{"$in": ids}},
		bson.M{"$addToSet": bson.M{"job_ids": jobID}}); err != nil {
		return fmt.Errorf("error linking requests to job: %w", err)
	}
	return nil
}

// InFlightOnDefinitions finds the unsettled requests to models of jobs other than jobID on any of the
// definitions defIDs. Only their ids, definition ids and components are loaded.
func (s *Store) InFlightOnDefinitions(ctx context.Context, defIDs []ObjectID, jobID string, models []string) ([]Request, error) {
	if len(defIDs) == 0 {
		return nil, nil
	}
	cur, err := s.requests.Find(ctx, bson.M{
		"definition_ids": bson.M{"$in": defIDs},
		"state":          bson.M{"$in": bson.A{StatePending, StateClaimed, StateSubmitted}},
		"job_ids":        bson.M{"$ne": jobID},
		"model":          bson.M{"$in": models},
	}, options.Find().SetProjection(bson.M{"definition_ids": 1, "components": 1}))
	if err != nil {
		return nil, fmt.Errorf("error finding requests in flight: %w", err)
	}
	var rs []Request
	if err := cur.All(ctx, &rs); err != nil {
		return nil, fmt.Errorf("error finding requests in flight: %w", err)
	}
	return rs, nil
}

// The immediate path: a request is claimed by compare-and-set, sent as a chat completion, and settled. While
// its call is in flight the request carries a batch id no batch document has (the marker), so a sweep returns
// it to pending if the worker dies.

// PendingRequestsOfJob finds job jobID's pending requests to model and yields them in _id order, reading them
// as they are consumed; a read error is yielded last. Ranging over the sequence closes the cursor, so a caller
// that gets no error must range over it.
func (s *Store) PendingRequestsOfJob(ctx context.Context, jobID, model string) (iter.Seq2[Request, error], error) {
	cur, err := s.requests.Find(ctx, bson.M{"job_ids": jobID, "state": StatePending, "model": model},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("error loading requests of %s: %w", jobID, err)
	}
	return func(yield func(Request, error) bool) {
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var r Request
			if err := cur.Decode(&r); err != nil {
				yield(Request{}, fmt.Errorf("error decoding request: %w", err))
				return
			}
			if !yield(r, nil) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(Request{}, fmt.Errorf("error reading requests of %s: %w", jobID, err))
		}
	}, nil
}

// ClaimImmediate moves request id from pending to claimed under marker, counting an attempt, and returns it as
// claimed; nil if it was not pending (a batch builder claimed it first, or it settled meanwhile).
func (s *Store) ClaimImmediate(ctx context.Context, id, marker string, at time.Time) (*Request, error) {
	var claimed Request
	err := s.requests.FindOneAndUpdate(ctx, bson.M{"_id": id, "state": requestMove(StateClaimed, StatePending)},
		bson.M{"$set": bson.M{"state": StateClaimed, "batch_id": marker, "updated_at": at}, "$inc": bson.M{"attempts": 1}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&claimed)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error claiming %s: %w", id, err)
	}
	return &claimed, nil
}

// heldImmediate is the filter of a request still held by the immediate claim that returned claimed: the same
// marker and attempt, still claimed.
func heldImmediate(claimed *Request, to RequestState) bson.M {
	return bson.M{"_id": claimed.ID, "batch_id": claimed.BatchID, "attempts": claimed.Attempts, "state": requestMove(to, StateClaimed)}
}

// ReleaseImmediate moves a request claimed by ClaimImmediate back to pending after a transport error, giving
// its attempt back, and reports whether it moved.
func (s *Store) ReleaseImmediate(ctx context.Context, claimed *Request, lastError string, at time.Time) (bool, error) {
	res, err := s.requests.UpdateOne(ctx, heldImmediate(claimed, StatePending), bson.M{
		"$set":   bson.M{"state": StatePending, "last_error": lastError, "updated_at": at},
		"$unset": bson.M{"batch_id": ""}, "$inc": bson.M{"attempts": -1}})
	if err != nil {
		return false, fmt.Errorf("error releasing %s: %w", claimed.ID, err)
	}
	return res.ModifiedCount > 0, nil
}

// SucceedImmediate moves a request claimed by ClaimImmediate to succeeded and applied with its answer, and
// reports whether it moved (false: it was released while its call ran).
func (s *Store) SucceedImmediate(ctx context.Context, claimed *Request, result string, usage Usage, cost float64, at time.Time) (bool, error) {
	res, err := s.requests.UpdateOne(ctx, heldImmediate(claimed, StateSucceeded), bson.M{
		"$set": bson.M{"state": StateSucceeded, "result": result, "applied": true, "applied_at": at,
			"settled_at": at, "updated_at": at, "immediate": true, "usage": usage, "cost_usd": cost},
		"$unset": bson.M{"batch_id": ""}})
	if err != nil {
		return false, fmt.Errorf("error settling %s: %w", claimed.ID, err)
	}
	return res.ModifiedCount > 0, nil
}

// FailImmediate records a failed attempt of a request claimed by ClaimImmediate and moves it to to: pending to
// be tried again, or dead. It reports whether it moved.
func (s *Store) FailImmediate(ctx context.Context, claimed *Request, to RequestState, reason string, usage Usage, cost float64, at time.Time) (bool, error) {
	if to != StatePending && to != StateDead {
		panic(fmt.Sprintf("store: a failed immediate attempt moves to pending or dead, not %s", to))
	}
	set := bson.M{"state": to, "last_error": reason, "updated_at": at, "immediate": true, "usage": usage, "cost_usd": cost}
	if to == StateDead {
		set["settled_at"] = at
	}
	res, err := s.requests.UpdateOne(ctx, heldImmediate(claimed, to), bson.M{"$set": set, "$unset": bson.M{"batch_id": ""},
		"$push": bson.M{"errors": AttemptError{Attempt: claimed.Attempts, Reason: reason, At: at}}})
	if err != nil {
		return false, fmt.Errorf("error settling %s: %w", claimed.ID, err)
	}
	return res.ModifiedCount > 0, nil
}
