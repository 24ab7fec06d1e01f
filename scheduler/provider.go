package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// Provider is the PeriodicTaskManager's config provider: one "@every interval" poll-batch entry per batch
// that OpenAI is still working on.
type Provider struct {
	Store    *store.Store
	Interval time.Duration
}

// GetConfigs implements asynq.PeriodicTaskConfigProvider.
func (p *Provider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := p.Store.Batches.Find(ctx, bson.M{"state": store.BatchSubmitted},
		options.Find().SetProjection(bson.M{"_id": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("error listing batches in flight: %w", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("error listing batches in flight: %w", err)
	}
	spec := fmt.Sprintf("@every %s", p.Interval)
	out := make([]*asynq.PeriodicTaskConfig, 0, len(rows))
	for _, r := range rows {
		t, err := tasks.NewPollBatchTask(r.ID, p.Interval)
		if err != nil {
			return nil, err
		}
		out = append(out, &asynq.PeriodicTaskConfig{Cronspec: spec, Task: t})
	}
	return out, nil
}
