package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Requests claimed into a batch document (pending -> claimed -> submitted), the tokens enqueued per model,
// and the hold on a model's builds (synthesis_models).

// BuildCandidates returns up to limit of the oldest pending requests of model, with only what a build packs by:
// id, body size, input token estimate and creation time.
func (s *Store) BuildCandidates(ctx context.Context, model string, limit int) ([]Request, error) {
	cur, err := s.requests.Find(ctx, bson.M{"state": StatePending, "model": model},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).
			SetLimit(int64(limit)).
			SetProjection(bson.M{"_id": 1, "body_bytes": 1, "input_tokens_est": 1, "created_at": 1}))
	if err != nil {
		return nil, fmt.Errorf("error finding pending requests: %w", err)
	}
	var cands []Request
	if err := cur.All(ctx, &cands); err != nil {
		return nil, fmt.Errorf("error finding pending requests: %w", err)
	}
	return cands, nil
}

// ClaimPendingIntoBatch moves the requests ids that are still pending to claimed by batch document batchID,
// counting an attempt for each, and returns how many it moved.
func (s *Store) ClaimPendingIntoBatch(ctx context.Context, batchID string, ids []string, now time.Time) (int, error) {
	res, err := s.updateMany(ctx, s.requests, bson.M{"_id": bson.M{"$in": ids}, "state": requestMove(StateClaimed, StatePending)},
		bson.M{"$set": bson.M{"state": StateClaimed, "batch_id": batchID, "updated_at": now}, "$inc": bson.M{"attempts": 1}})
	if err != nil {
		return 0, fmt.Errorf("error claiming requests for %s: %w", batchID, err)
	}
	return int(res.ModifiedCount), nil
}

// SubmitClaimed moves the requests batch document batchID claimed to submitted, once its batch exists at the
// provider, and returns how many it moved.
func (s *Store) SubmitClaimed(ctx context.Context, batchID string, now time.Time) (int, error) {
	res, err := s.updateMany(ctx, s.requests, bson.M{"batch_id": batchID, "state": requestMove(StateSubmitted, StateClaimed)},
		bson.M{"$set": bson.M{"state": StateSubmitted, "updated_at": now}})
	if err != nil {
		return 0, fmt.Errorf("error marking requests of %s submitted: %w", batchID, err)
	}
	return int(res.ModifiedCount), nil
}

// ClaimedTotals counts the requests batch document batchID claimed and adds up their input token estimates.
func (s *Store) ClaimedTotals(ctx context.Context, batchID string) (int, int64, error) {
	cur, err := s.requests.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.M{"batch_id": batchID, "state": StateClaimed}}},
		{{Key: "$group", Value: bson.M{"_id": nil, "n": bson.M{"$sum": 1}, "t": bson.M{"$sum": "$input_tokens_est"}}}},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("error counting claimed requests: %w", err)
	}
	defer cur.Close(ctx)
	var row struct {
		N int   `bson:"n"`
		T int64 `bson:"t"`
	}
	if cur.Next(ctx) {
		if err := cur.Decode(&row); err != nil {
			return 0, 0, err
		}
	}
	return row.N, row.T, cur.Err()
}

// ClaimedRequest is a claimed request as its batch's input line names it.
type ClaimedRequest struct {
	ID       string `bson:"_id"`
	Attempts int    `bson:"attempts"`
}

// EachClaimedPage reads the requests batch document batchID claimed, in id order, and hands them to fn
// page at most page at a time. fn must not keep the slice: it is reused for the next page.
func (s *Store) EachClaimedPage(ctx context.Context, batchID string, page int, fn func([]ClaimedRequest) error) error {
	cur, err := s.requests.Find(ctx, bson.M{"batch_id": batchID, "state": StateClaimed},
		options.Find().SetProjection(bson.M{"attempts": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(int32(page)))
	if err != nil {
		return fmt.Errorf("error reading claimed requests: %w", err)
	}
	defer cur.Close(ctx)
	rs := make([]ClaimedRequest, 0, page)
	for cur.Next(ctx) {
		var r ClaimedRequest
		if err := cur.Decode(&r); err != nil {
			return fmt.Errorf("error decoding request: %w", err)
		}
		rs = append(rs, r)
		if len(rs) == page {
			if err := fn(rs); err != nil {
				return err
			}
			rs = rs[:0]
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("error reading claimed requests: %w", err)
	}
	if len(rs) == 0 {
		return nil
	}
	return fn(rs)
}

// enqueuedStates are the states of a batch document whose input tokens count against a model's enqueued
// token budget.
var enqueuedStates = []BatchState{BatchUploading, BatchUploaded, BatchCreating, BatchSubmitted}

// EnqueuedTokens adds up the estimated input tokens of model's batch documents that are uploading or at the
// provider.
func (s *Store) EnqueuedTokens(ctx context.Context, model string) (int64, error) {
	cur, err := s.batches.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.M{"model": model, "state": bson.M{"$in": enqueuedStates}}}},
		{{Key: "$group", Value: bson.M{"_id": nil, "t": bson.M{"$sum": "$input_tokens_est"}}}},
	})
	if err != nil {
		return 0, fmt.Errorf("error summing enqueued tokens: %w", err)
	}
	defer cur.Close(ctx)
	var row struct {
		T int64 `bson:"t"`
	}
	if cur.Next(ctx) {
		if err := cur.Decode(&row); err != nil {
			return 0, err
		}
	}
	return row.T, cur.Err()
}

// ModelHoldUntil returns when the hold on model's builds ends: the zero time if model was never held.
func (s *Store) ModelHoldUntil(ctx context.Context, model string) (time.Time, error) {
	var m struct {
		HoldUntil time.Time `bson:"hold_until"`
	}
	err := s.models.FindOne(ctx, bson.M{"_id": model}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("error reading model hold: %w", err)
	}
	return m.HoldUntil, nil
}

// HoldModelBuilds holds model's builds until until, for reason, written at now.
func (s *Store) HoldModelBuilds(ctx context.Context, model string, until time.Time, reason string, now time.Time) error {
	_, err := s.models.UpdateOne(ctx, bson.M{"_id": model},
		bson.M{"$set": bson.M{"hold_until": until, "reason": reason, "updated_at": now}}, options.UpdateOne().SetUpsert(true))
	return err
}
