package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Batch documents: the moves of a build (claiming -> uploading -> uploaded -> creating -> submitted, or
// abandoned), the provider status a poll records (submitted -> terminal), and the leases that keep one worker
// on a document at a time.

// InsertBatch stores a new batch document.
func (s *Store) InsertBatch(ctx context.Context, b *Batch) error {
	if _, err := s.batches.InsertOne(ctx, b); err != nil {
		return fmt.Errorf("error creating batch document: %w", err)
	}
	return nil
}

// DeleteEmptyBatch removes batch document id while it is still claiming. Only for a document no request
// names: its claim took nothing.
func (s *Store) DeleteEmptyBatch(ctx context.Context, id string) error {
	if _, err := s.batches.DeleteOne(ctx, bson.M{"_id": id, "state": BatchClaiming}); err != nil {
		return fmt.Errorf("error removing empty batch %s: %w", id, err)
	}
	return nil
}

// LeaseForBuild leases to owner, until now+lease, the oldest batch document of model that is still being
// built and whose lease ran out (its builder died or handed it back). It returns nil when there is none.
func (s *Store) LeaseForBuild(ctx context.Context, model, owner string, now time.Time, lease time.Duration) (*Batch, error) {
	var b Batch
	err := s.batches.FindOneAndUpdate(ctx,
		bson.M{"model": model, "state": bson.M{"$in": BuildStates}, "lease_until": bson.M{"$lt": now}},
		bson.M{"$set": bson.M{"lease_owner": owner, "lease_until": now.Add(lease)}},
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetSort(bson.D{{Key: "created_at", Value: 1}}),
	).Decode(&b)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error looking for unfinished batches: %w", err)
	}
	return &b, nil
}

// RenewLease extends owner's lease on batch document id to until, while owner holds it and the document is
// in one of states. It reports false when nothing matched: the document moved on or was taken over.
func (s *Store) RenewLease(ctx context.Context, id, owner string, states []BatchState, until time.Time) (bool, error) {
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "lease_owner": owner, "state": bson.M{"$in": states}},
		bson.M{"$set": bson.M{"lease_until": until}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount > 0, nil
}

// ReleaseLease lets other workers take batch document id from until on, if owner still holds it.
func (s *Store) ReleaseLease(ctx context.Context, id, owner string, until time.Time) error {
	_, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "lease_owner": owner}, bson.M{"$set": bson.M{"lease_until": until}})
	return err
}

// ExpireLease ends the lease on batch document id at at, whoever holds it.
func (s *Store) ExpireLease(ctx context.Context, id string, at time.Time) error {
	_, err := s.batches.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"lease_until": at}})
	return err
}

// moveBatchDoc moves batch document id from state from to to (compare-and-set on from), setting set too. It
// reports whether the document moved.
func (s *Store) moveBatchDoc(ctx context.Context, id string, from, to BatchState, set bson.M, now time.Time) (bool, error) {
	fields := bson.M{"state": to, "updated_at": now}
	maps.Copy(fields, set)
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": batchMove(to, from)}, bson.M{"$set": fields})
	if err != nil {
		return false, fmt.Errorf("error moving batch %s %s -> %s: %w", id, from, to, err)
	}
	return res.ModifiedCount > 0, nil
}

// RecordClaimed moves batch document id from claiming to uploading with the number of requests it claimed and
// their estimated input tokens.
func (s *Store) RecordClaimed(ctx context.Context, id string, requests int, inputTokensEst int64, now time.Time) (bool, error) {
	return s.moveBatchDoc(ctx, id, BatchClaiming, BatchUploading, bson.M{"request_count": requests, "input_tokens_est": inputTokensEst}, now)
}

// RecordUploaded moves batch document id from uploading to uploaded with its input file's id and size.
func (s *Store) RecordUploaded(ctx context.Context, id, fileID string, bytes int64, now time.Time) (bool, error) {
	return s.moveBatchDoc(ctx, id, BatchUploading, BatchUploaded, bson.M{"input_file_id": fileID, "bytes": bytes}, now)
}

// MarkCreating moves batch document id from uploaded to creating, counting a create attempt: from here on, a
// create's outcome is unknown until it is recorded.
func (s *Store) MarkCreating(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": batchMove(BatchCreating, BatchUploaded)},
		bson.M{"$set": bson.M{"state": BatchCreating, "updated_at": now}, "$inc": bson.M{"create_attempts": 1}})
	if err != nil {
		return false, fmt.Errorf("error marking %s creating: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}

// CountCreateAttempt counts one more create attempt of batch document id while it is creating.
func (s *Store) CountCreateAttempt(ctx context.Context, id string, now time.Time) error {
	if _, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": BatchCreating},
		bson.M{"$inc": bson.M{"create_attempts": 1}, "$set": bson.M{"updated_at": now}}); err != nil {
		return fmt.Errorf("error counting create attempt: %w", err)
	}
	return nil
}

// CountUploadAttempt counts one more upload attempt of batch document id and returns the attempts so far.
func (s *Store) CountUploadAttempt(ctx context.Context, id string) (int, error) {
	var counted Batch
	if err := s.batches.FindOneAndUpdate(ctx, bson.M{"_id": id}, bson.M{"$inc": bson.M{"upload_attempts": 1}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&counted); err != nil {
		return 0, fmt.Errorf("error counting upload attempt of %s: %w", id, err)
	}
	return counted.UploadAttempts, nil
}

// RevertToUploaded moves batch document id from creating back to uploaded, for a create that certainly
// created nothing.
func (s *Store) RevertToUploaded(ctx context.Context, id string, now time.Time) (bool, error) {
	return s.moveBatchDoc(ctx, id, BatchCreating, BatchUploaded, nil, now)
}

// RecordCreated moves batch document id from creating to submitted with the provider's batch id and first
// status, read at now.
func (s *Store) RecordCreated(ctx context.Context, id, providerBatchID, status string, now time.Time) (bool, error) {
	return s.moveBatchDoc(ctx, id, BatchCreating, BatchSubmitted, bson.M{
		"openai_batch_id": providerBatchID, "openai_status": status, "status_rank": StatusRank(status),
		"submitted_at": now, "status_history": []StatusChange{{Status: status, At: now}},
	}, now)
}

// AbandonBatch moves batch document id from state from (a build state) to abandoned, recording why.
func (s *Store) AbandonBatch(ctx context.Context, id string, from BatchState, why BatchError, now time.Time) (bool, error) {
	return s.moveBatchDoc(ctx, id, from, BatchAbandoned, bson.M{"errors": []BatchError{why}}, now)
}

// ProviderStatus is what the provider reported of a batch.
type ProviderStatus struct {
	Status       string
	Counts       RequestCounts
	Usage        *Usage // nil when the provider reported none
	OutputFileID string // kept as stored when empty
	ErrorFileID  string // kept as stored when empty
	Errors       []BatchError
}

// RecordProviderStatus stores st, read at now, on submitted batch document id and counts the poll. Status
// writes are monotonic: a status ranked below the stored one (a stale poll) changes nothing. A terminal
// status moves the document to terminal. A status other than prev, the one the caller last read, is added to
// the history. It reports whether the document was written.
func (s *Store) RecordProviderStatus(ctx context.Context, id, prev string, st ProviderStatus, now time.Time) (bool, error) {
	rank := StatusRank(st.Status)
	set := bson.M{"openai_status": st.Status, "status_rank": rank, "updated_at": now, "request_counts": st.Counts}
	if st.Usage != nil {
		set["usage"] = *st.Usage
	}
	if st.OutputFileID != "" {
		set["output_file_id"] = st.OutputFileID
	}
	if st.ErrorFileID != "" {
		set["error_file_id"] = st.ErrorFileID
	}
	if len(st.Errors) > 0 {
		set["errors"] = st.Errors
	}
	state := any(BatchSubmitted)
	if IsTerminalStatus(st.Status) {
		state = batchMove(BatchTerminal, BatchSubmitted)
		set["state"] = BatchTerminal
		set["terminal_at"] = now
	}
	upd := bson.M{"$set": set, "$inc": bson.M{"poll_count": 1}}
	if st.Status != prev {
		upd["$push"] = bson.M{"status_history": StatusChange{Status: st.Status, At: now}}
	}
	res, err := s.batches.UpdateOne(ctx, bson.M{"_id": id, "state": state, "status_rank": bson.M{"$lte": rank}}, upd)
	if err != nil {
		return false, fmt.Errorf("error recording status of %s: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}
