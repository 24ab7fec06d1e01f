package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// JobFilter selects jobs for RecentJobs. The zero value selects every job.
type JobFilter struct {
	Status JobStatus // "" for any
	// Brief leaves out the lists a job may carry by the thousand (words missing, input errors, chunks expanded):
	// for listings, which show counts.
	Brief bool
}

// RecentJobs lists the newest jobs under f, at most limit.
func (s *Store) RecentJobs(ctx context.Context, f JobFilter, limit int64) ([]Job, error) {
	filter := bson.M{}
	if f.Status != "" {
		filter["status"] = f.Status
	}
	o := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit)
	if f.Brief {
		o.SetProjection(bson.M{"words_missing": 0, "input_errors": 0, "expanded": 0})
	}
	cur, err := s.jobs.Find(ctx, filter, o)
	if err != nil {
		return nil, fmt.Errorf("error listing jobs: %w", err)
	}
	out := []Job{} // an empty list, not null, in JSON
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("error listing jobs: %w", err)
	}
	return out, nil
}

// BatchFilter selects batches for RecentBatches. The zero value selects every batch.
type BatchFilter struct {
	State BatchState // "" for any
	Model string     // "" for any
}

// RecentBatches lists the newest batch documents under f, at most limit.
func (s *Store) RecentBatches(ctx context.Context, f BatchFilter, limit int64) ([]Batch, error) {
	filter := bson.M{}
	if f.State != "" {
		filter["state"] = f.State
	}
	if f.Model != "" {
		filter["model"] = f.Model
	}
	cur, err := s.batches.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("error listing batches: %w", err)
	}
	var out []Batch
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("error listing batches: %w", err)
	}
	return out, nil
}

// Lookups of the estimate. The word lookup by text may move to words.go beside the other word reads.

// SucceededBodyHashes returns the hashes among hashes that a succeeded request of prompt version
// promptVersion holds an answer for: the result cache.
func (s *Store) SucceededBodyHashes(ctx context.Context, hashes []string, promptVersion string) (map[string]bool, error) {
	cur, err := s.requests.Find(ctx, bson.M{"body_hash": bson.M{"$in": hashes}, "state": StateSucceeded,
		"prompt_version": promptVersion}, options.Find().SetProjection(bson.M{"body_hash": 1}))
	if err != nil {
		return nil, fmt.Errorf("error looking up cached results: %w", err)
	}
	var rows []struct {
		BodyHash string `bson:"body_hash"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("error looking up cached results: %w", err)
	}
	out := make(map[string]bool, len(rows))
	for _, r := range rows {
		out[r.BodyHash] = true
	}
	return out, nil
}
