package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The scheduler's reads and moves: what the sweep finds left behind, the batches the PeriodicTaskManager
// polls, and the periodic jobs' state and reads.

// CollPeriodic holds one PeriodicState document per periodic job.
const CollPeriodic = "synthesis_periodic"

// fieldSupersededBy is the request field naming the reprocess job that asked a succeeded request's words
// again; a request that has it is not picked by the next reprocess run.
const fieldSupersededBy = "superseded_by"

// CountExpandingJobs counts the jobs still expanding whose last update is after updatedAfter.
func (s *Store) CountExpandingJobs(ctx context.Context, updatedAfter time.Time) (int64, error) {
	n, err := s.jobs.CountDocuments(ctx, bson.M{"status": JobExpanding, "updated_at": bson.M{"$gt": updatedAfter}})
	if err != nil {
		return 0, fmt.Errorf("error counting expanding jobs: %w", err)
	}
	return n, nil
}

// PendingModels lists the models that have pending requests.
func (s *Store) PendingModels(ctx context.Context) ([]string, error) {
	return distinctStrings(ctx, s.requests, "model", bson.M{"state": StatePending})
}

// OldestPendingUpdate returns the update time of the pending request of model that has waited longest, or
// ErrNotFound when model has none.
func (s *Store) OldestPendingUpdate(ctx context.Context, model string) (time.Time, error) {
	var oldest struct {
		UpdatedAt time.Time `bson:"updated_at"`
	}
	err := s.requests.FindOne(ctx, bson.M{"state": StatePending, "model": model},
		options.FindOne().SetSort(bson.D{{Key: "updated_at", Value: 1}}).SetProjection(bson.M{"updated_at": 1})).Decode(&oldest)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, fmt.Errorf("pending request of %s: %w", model, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, err
	}
	return oldest.UpdatedAt, nil
}

// ModelsOfLapsedBuilds lists the models of batch documents a builder left half-way: still in a build state
// with their lease run out before now.
func (s *Store) ModelsOfLapsedBuilds(ctx context.Context, now time.Time) ([]string, error) {
	return distinctStrings(ctx, s.batches, "model", bson.M{
		"state":       bson.M{"$in": BuildStates},
		"lease_until": bson.M{"$lt": now},
	})
}

// LapsedTerminalBatchIDs lists the terminal batches not yet applied whose lease ran out before now.
func (s *Store) LapsedTerminalBatchIDs(ctx context.Context, now time.Time) ([]string, error) {
	return s.schedulerIDs(ctx, s.batches, bson.M{"state": BatchTerminal, "lease_until": bson.M{"$lt": now}}, options.Find())
}

// StalledJobIDs lists the jobs submitted or expanding whose last update is before updatedBefore.
func (s *Store) StalledJobIDs(ctx context.Context, updatedBefore time.Time) ([]string, error) {
	return s.schedulerIDs(ctx, s.jobs, bson.M{"status": bson.M{"$in": []JobStatus{JobSubmitted, JobExpanding}},
		"updated_at": bson.M{"$lt": updatedBefore}}, options.Find())
}

// RunningJobIDs lists at most limit running jobs.
func (s *Store) RunningJobIDs(ctx context.Context, limit int64) ([]string, error) {
	return s.schedulerIDs(ctx, s.jobs, bson.M{"status": JobRunning}, options.Find().SetLimit(limit))
}

// SubmittedBatchIDs lists the batches the provider is working on (state submitted), in id order.
func (s *Store) SubmittedBatchIDs(ctx context.Context) ([]string, error) {
	ids, err := s.schedulerIDs(ctx, s.batches, bson.M{"state": BatchSubmitted}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("error listing batches in flight: %w", err)
	}
	return ids, nil
}

// StaleClaimBatchIDs lists the batch ids holding requests claimed and not updated since updatedBefore.
func (s *Store) StaleClaimBatchIDs(ctx context.Context, updatedBefore time.Time) ([]string, error) {
	return distinctStrings(ctx, s.requests, "batch_id", bson.M{"state": StateClaimed,
		"updated_at": bson.M{"$lt": updatedBefore}})
}

// ReleaseOrphanedClaims moves the requests claimed by batchID back to pending, for a batch that will never
// be sent (abandoned, or its document is gone), and reports how many moved. The claim counted an attempt
// that was never made, so it is taken back.
func (s *Store) ReleaseOrphanedClaims(ctx context.Context, batchID string, now time.Time) (int, error) {
	res, err := s.updateMany(ctx, s.requests, bson.M{"batch_id": batchID, "state": requestMove(StatePending, StateClaimed)},
		bson.M{"$set": bson.M{"state": StatePending, "updated_at": now}, "$unset": bson.M{"batch_id": ""}, "$inc": bson.M{"attempts": -1}})
	if res == nil {
		return 0, err
	}
	return int(res.ModifiedCount), err
}

// schedulerIDs lists the string _id of the documents of c under filter.
func (s *Store) schedulerIDs(ctx context.Context, c *mongo.Collection, filter bson.M, opts *options.FindOptionsBuilder) ([]string, error) {
	cur, err := c.Find(ctx, filter, opts.SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// PeriodicState is one periodic job's record: its last run and, for new_words, its watermark (the
// created_at and _id of the last word it took).
type PeriodicState struct {
	ID          string    `bson:"_id"`
	LastRunAt   time.Time `bson:"last_run_at"`
	Watermark   time.Time `bson:"watermark"`
	WatermarkID ObjectID  `bson:"watermark_id"`
	LastJobID   string    `bson:"last_job_id,omitempty"`
	LastWords   int       `bson:"last_words"`
	LastError   string    `bson:"last_error,omitempty"`
	Runs        int       `bson:"runs"`
}

func (s *Store) periodicColl() *mongo.Collection { return s.db.Collection(CollPeriodic) }

// PeriodicState loads periodic job name's state; ErrNotFound when the job has never been seen.
func (s *Store) PeriodicState(ctx context.Context, name string) (*PeriodicState, error) {
	var st PeriodicState
	err := s.periodicColl().FindOne(ctx, bson.M{"_id": name}).Decode(&st)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("periodic job %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// StartPeriodic records periodic job name as first seen at now (its clock and watermark start there). A
// state already recorded, by a scheduler that got there first, is kept.
func (s *Store) StartPeriodic(ctx context.Context, name string, now time.Time) error {
	_, err := s.periodicColl().InsertOne(ctx, PeriodicState{ID: name, LastRunAt: now, Watermark: now})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return err
	}
	return nil
}

// ClaimPeriodicRun claims the run of periodic job name due since lastRunAt, by compare-and-set on
// last_run_at, and reports whether it claimed it: of two schedulers that overlap during a lease hand-over,
// one does.
func (s *Store) ClaimPeriodicRun(ctx context.Context, name string, lastRunAt, now time.Time) (bool, error) {
	res, err := s.periodicColl().UpdateOne(ctx, bson.M{"_id": name, "last_run_at": lastRunAt},
		bson.M{"$set": bson.M{"last_run_at": now}, "$inc": bson.M{"runs": 1}})
	if err != nil {
		return false, err
	}
	return res.ModifiedCount > 0, nil
}

// RecordPeriodicRun records what the run of periodic job name did: the words it submitted and its error
// ("" for none). An empty jobID (nothing submitted) leaves the last job id as it was.
func (s *Store) RecordPeriodicRun(ctx context.Context, name, jobID string, words int, lastError string) error {
	set := bson.M{"last_words": words, "last_error": lastError}
	if jobID != "" {
		set["last_job_id"] = jobID
	}
	_, err := s.periodicColl().UpdateOne(ctx, bson.M{"_id": name}, bson.M{"$set": set})
	return err
}

// SetPeriodicWatermark moves periodic job name's watermark to the word (createdAt, id).
func (s *Store) SetPeriodicWatermark(ctx context.Context, name string, createdAt time.Time, id ObjectID) error {
	_, err := s.periodicColl().UpdateOne(ctx, bson.M{"_id": name},
		bson.M{"$set": bson.M{"watermark": createdAt, "watermark_id": id}})
	return err
}

var wordsCreatedIndexOnce sync.Once

// NewWordsSince returns at most limit words created after the watermark (createdAt, id), oldest first, with
// their text, languages and created_at.
func (s *Store) NewWordsSince(ctx context.Context, createdAt time.Time, id ObjectID, limit int) ([]Word, error) {
	wordsCreatedIndexOnce.Do(func() {
		// Floridify's own indexes do not cover created_at; without this the query scans every word.
		_, _ = s.words.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}})
	})
	filter := bson.M{"$or": bson.A{
		bson.M{"created_at": bson.M{"$gt": createdAt}},
		bson.M{"created_at": createdAt, "_id": bson.M{"$gt": id}},
	}}
	cur, err := s.words.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(limit)).SetProjection(bson.M{"text": 1, "languages": 1, "created_at": 1}))
	if err != nil {
		return nil, fmt.Errorf("error finding new words: %w", err)
	}
	var found []Word
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("error finding new words: %w", err)
	}
	return found, nil
}

// RequestsToReprocess finds the succeeded requests not yet superseded that were made with a prompt version
// other than promptVersion, or with one of fromModels, in id order. It takes the requests of at most
// maxWords words, and returns their ids and those words' ids (each once, in order of first request).
func (s *Store) RequestsToReprocess(ctx context.Context, promptVersion string, fromModels []string, maxWords int) ([]string, []ObjectID, error) {
	stale := bson.A{bson.M{"prompt_version": bson.M{"$ne": promptVersion}}}
	if len(fromModels) > 0 {
		stale = append(stale, bson.M{"model": bson.M{"$in": fromModels}})
	}
	cur, err := s.requests.Find(ctx, bson.M{
		"state": StateSucceeded, fieldSupersededBy: bson.M{"$exists": false}, "$or": stale,
	}, options.Find().SetProjection(bson.M{"_id": 1, "word_id": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(5000))
	if err != nil {
		return nil, nil, fmt.Errorf("error finding requests to reprocess: %w", err)
	}
	defer cur.Close(ctx)
	var reqIDs []string
	var wordIDs []ObjectID
	seen := map[ObjectID]bool{}
	for cur.Next(ctx) {
		var r struct {
			ID     string   `bson:"_id"`
			WordID ObjectID `bson:"word_id"`
		}
		if err := cur.Decode(&r); err != nil {
			return nil, nil, fmt.Errorf("error reading requests to reprocess: %w", err)
		}
		if !seen[r.WordID] {
			if len(wordIDs) == maxWords {
				continue // this word waits for the next run, with all its requests
			}
			seen[r.WordID] = true
			wordIDs = append(wordIDs, r.WordID)
		}
		reqIDs = append(reqIDs, r.ID)
	}
	if err := cur.Err(); err != nil {
		return nil, nil, fmt.Errorf("error reading requests to reprocess: %w", err)
	}
	return reqIDs, wordIDs, nil
}

// WordsToReprocess loads the text and languages of the words ids.
func (s *Store) WordsToReprocess(ctx context.Context, ids []ObjectID) ([]Word, error) {
	wc, err := s.words.Find(ctx, bson.M{"_id": bson.M{"$in": ids}}, options.Find().SetProjection(bson.M{"text": 1, "languages": 1}))
	if err != nil {
		return nil, fmt.Errorf("error loading words to reprocess: %w", err)
	}
	var words []Word
	if err := wc.All(ctx, &words); err != nil {
		return nil, fmt.Errorf("error loading words to reprocess: %w", err)
	}
	return words, nil
}

// MarkSuperseded marks the requests ids superseded by job jobID, so that the next reprocess run moves on.
func (s *Store) MarkSuperseded(ctx context.Context, ids []string, jobID string) error {
	// In slices: an $in of a few hundred thousand ids would pass MongoDB's 16 MB command limit.
	for start := 0; start < len(ids); start += 10_000 {
		part := ids[start:min(start+10_000, len(ids))]
		if _, err := s.updateMany(ctx, s.requests, bson.M{"_id": bson.M{"$in": part}},
			bson.M{"$set": bson.M{fieldSupersededBy: jobID}}); err != nil {
			return err
		}
	}
	return nil
}

// CountSupersededBy counts the requests superseded by job jobID.
func (s *Store) CountSupersededBy(ctx context.Context, jobID string) (int64, error) {
	return s.requests.CountDocuments(ctx, bson.M{fieldSupersededBy: jobID})
}
