package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

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
	ids, err := p.Store.SubmittedBatchIDs(ctx)
	if err != nil {
		return nil, err
	}
	spec := fmt.Sprintf("@every %s", p.Interval)
	out := make([]*asynq.PeriodicTaskConfig, 0, len(ids))
	for _, id := range ids {
		t, err := tasks.NewPollBatchTask(id, p.Interval)
		if err != nil {
			return nil, err
		}
		out = append(out, &asynq.PeriodicTaskConfig{Cronspec: spec, Task: t})
	}
	return out, nil
}
