package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Settling a batch's requests once its answers are in, and the batch's own move from terminal to applied.

// LeaseTerminalBatch takes the apply lease of terminal batch id for owner until now+lease, if no one holds
// it. It reports false when the batch is not terminal or another applier holds an unexpired lease.
func (s *Store) LeaseTerminalBatch(ctx context.Context, id, owner string, now time.Time, lease time.Duration) (bool, error) {
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": BatchTerminal, "lease_until": bson.M{"$lt": now}},
		bson.M{"$set": bson.M{"lease_owner": owner, "lease_until": now.Add(lease)}})
	if err != nil {
		return false, fmt.Errorf("error leasing %s for apply: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}

// FinishApply moves batch id from terminal to applied, recording what applying did to its requests and its
// cost at batch and at immediate prices. It reports whether it moved.
func (s *Store) FinishApply(ctx context.Context, id string, counts ApplyCounts, costUSD, immediateUSD float64, now time.Time) (bool, error) {
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": batchMove(BatchApplied, BatchTerminal)}, bson.M{"$set": bson.M{
		"state": BatchApplied, "applied_at": now, "updated_at": now, "applied": counts,
		"cost_usd": costUSD, "immediate_usd": immediateUSD,
	}})
	if err != nil {
		return false, fmt.Errorf("error marking %s applied: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}

// RequestsByIDs loads the requests of ids (those that exist), in no particular order.
func (s *Store) RequestsByIDs(ctx context.Context, ids []string) ([]Request, error) {
	cur, err := s.requests.Find(ctx, bson.M{"_id": bson.M{"$in": ids}})
	if err != nil {
		return nil, fmt.Errorf("error loading requests: %w", err)
	}
	var reqs []Request
	if err := cur.All(ctx, &reqs); err != nil {
		return nil, fmt.Errorf("error loading requests: %w", err)
	}
	return reqs, nil
}

// AttemptSettle is how one answered attempt of a request in a batch settles it.
type AttemptSettle struct {
	// Request is the request as loaded: its id, attempt and usage totals are the compare-and-set condition
	// and the base of the new totals.
	Request *Request
	// To is StateSucceeded (with Result), or StatePending, StateDead or StateCancelled (with Reason).
	To     RequestState
	Result string
	Reason string
	// Usage and CostUSD are this attempt's, added to the request's totals.
	Usage   Usage
	CostUSD float64
}

// SettleAttempts settles answered attempts of batch batchID, in the given order, with one bulk write. Each
// is a compare-and-set on (batch, attempt, unsettled state): a second applier's writes match nothing.
func (s *Store) SettleAttempts(ctx context.Context, batchID string, settles []AttemptSettle, now time.Time) error {
	if len(settles) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(settles))
	for _, a := range settles {
		r := a.Request
		filter := bson.M{"_id": r.ID, "batch_id": batchID, "attempts": r.Attempts,
			"state": requestMove(a.To, StateClaimed, StateSubmitted)}
		var upd bson.M
		if a.To == StateSucceeded {
			upd = bson.M{"$set": withUsage(bson.M{"state": StateSucceeded, "result": a.Result, "applied": false, "settled_at": now, "updated_at": now}, r, a)}
		} else {
			set := bson.M{"state": a.To, "last_error": a.Reason, "updated_at": now}
			if a.To != StatePending {
				set["settled_at"] = now
			}
			upd = bson.M{"$set": withUsage(set, r, a),
				"$push": bson.M{"errors": AttemptError{Attempt: r.Attempts, BatchID: batchID, Reason: a.Reason, At: now}}}
			if a.To == StatePending {
				upd["$unset"] = bson.M{"batch_id": ""}
			}
		}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(upd))
	}
	if err := s.bulkWrite(ctx, s.requests, models, false); err != nil {
		return fmt.Errorf("error settling requests: %w", err)
	}
	return nil
}

// withUsage adds this attempt's billed usage to the request's totals. The totals are computed here rather
// than with $inc (FerretDB applies only the first of several dotted $inc paths); the compare-and-set filter
// of the same update keeps a second applier from adding them twice.
func withUsage(set bson.M, r *Request, a AttemptSettle) bson.M {
	set["usage"] = r.Usage.Add(a.Usage)
	set["cost_usd"] = r.CostUSD + a.CostUSD
	return set
}

// MarkApplied records that the Floridify documents of succeeded requests ids are written. It returns how
// many it marked.
func (s *Store) MarkApplied(ctx context.Context, ids []string, now time.Time) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := s.updateMany(ctx, s.requests, bson.M{"_id": bson.M{"$in": ids}, "state": StateSucceeded},
		bson.M{"$set": bson.M{"applied": true, "applied_at": now}})
	if err != nil {
		return 0, fmt.Errorf("error marking requests applied: %w", err)
	}
	return res.ModifiedCount, nil
}

// leftovers matches the requests of batch batchID that are still unsettled (no result line settled them),
// for a move to to.
func leftovers(batchID string, to RequestState) bson.M {
	return bson.M{"batch_id": batchID, "state": requestMove(to, StateClaimed, StateSubmitted)}
}

// CancelLeftovers cancels the unsettled requests of batch batchID (its user cancelled it), recording reason.
// It returns how many it cancelled.
func (s *Store) CancelLeftovers(ctx context.Context, batchID, reason string, now time.Time) (int64, error) {
	res, err := s.updateMany(ctx, s.requests, leftovers(batchID, StateCancelled), bson.M{
		"$set":  bson.M{"state": StateCancelled, "last_error": reason, "settled_at": now, "updated_at": now},
		"$push": bson.M{"errors": AttemptError{BatchID: batchID, Reason: reason, At: now}}})
	if err != nil {
		return 0, fmt.Errorf("error cancelling leftover requests: %w", err)
	}
	return res.ModifiedCount, nil
}

// SettleDeadLeftovers settles as dead the unsettled requests of batch batchID that used up maxAttempts,
// recording reason. It returns how many died.
func (s *Store) SettleDeadLeftovers(ctx context.Context, batchID string, maxAttempts int, reason string, now time.Time) (int64, error) {
	filter := leftovers(batchID, StateDead)
	filter["attempts"] = bson.M{"$gte": maxAttempts}
	res, err := s.updateMany(ctx, s.requests, filter, bson.M{
		"$set":  bson.M{"state": StateDead, "last_error": reason, "settled_at": now, "updated_at": now},
		"$push": bson.M{"errors": AttemptError{BatchID: batchID, Reason: reason, At: now}}})
	if err != nil {
		return 0, fmt.Errorf("error settling dead requests: %w", err)
	}
	return res.ModifiedCount, nil
}

// ReleaseLeftovers sends the unsettled requests of batch batchID back to pending, recording reason. With
// giveBack, the attempt they were sent with is not counted. It returns how many it released.
func (s *Store) ReleaseLeftovers(ctx context.Context, batchID, reason string, giveBack bool, now time.Time) (int64, error) {
	upd := bson.M{"$set": bson.M{"state": StatePending, "last_error": reason, "updated_at": now},
		"$unset": bson.M{"batch_id": ""}, "$push": bson.M{"errors": AttemptError{BatchID: batchID, Reason: reason, At: now}}}
	if giveBack {
		upd["$inc"] = bson.M{"attempts": -1}
	}
	res, err := s.updateMany(ctx, s.requests, leftovers(batchID, StatePending), upd)
	if err != nil {
		return 0, fmt.Errorf("error releasing requests: %w", err)
	}
	return res.ModifiedCount, nil
}

// CachedAnswers returns, for the result cache, the succeeded requests of prompt version promptVersion whose
// body hash is one of hashes (only their id, body hash and result).
func (s *Store) CachedAnswers(ctx context.Context, hashes []string, promptVersion string) ([]Request, error) {
	cur, err := s.requests.Find(ctx, bson.M{
		"body_hash": bson.M{"$in": hashes}, "state": StateSucceeded, "prompt_version": promptVersion,
	}, options.Find().SetProjection(bson.M{"_id": 1, "body_hash": 1, "result": 1}))
	if err != nil {
		return nil, fmt.Errorf("error looking up cached results: %w", err)
	}
	var found []Request
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("error looking up cached results: %w", err)
	}
	return found, nil
}

// UnappliedCached loads those of requests ids that were created from the result cache and are not applied yet.
func (s *Store) UnappliedCached(ctx context.Context, ids []string) ([]Request, error) {
	cur, err := s.requests.Find(ctx, bson.M{"_id": bson.M{"$in": ids}, "state": StateSucceeded, "applied": false,
		"cached_from": bson.M{"$exists": true}})
	if err != nil {
		return nil, fmt.Errorf("error loading cached requests: %w", err)
	}
	var reqs []Request
	if err := cur.All(ctx, &reqs); err != nil {
		return nil, fmt.Errorf("error loading cached requests: %w", err)
	}
	return reqs, nil
}

// RejectCachedAnswer sends succeeded, unapplied request id back to pending without its cached answer,
// recording reason. It reports whether it moved.
func (s *Store) RejectCachedAnswer(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	res, err := s.requests.UpdateOne(ctx, bson.M{"_id": id, "state": requestMove(StatePending, StateSucceeded), "applied": false}, bson.M{
		"$set":   bson.M{"state": StatePending, "last_error": reason, "updated_at": now},
		"$unset": bson.M{"result": "", "cached_from": "", "settled_at": ""},
	})
	if err != nil {
		return false, fmt.Errorf("error releasing cached request %s: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}
