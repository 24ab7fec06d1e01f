// Package fleet wires one batchsynth process from its configuration: Redis (asynq), MongoDB, the OpenAI
// client, and the roles a process runs (worker, scheduler, web).
package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/floridify/batchsynth/handlers"
	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/logging"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/scheduler"
	"github.com/floridify/batchsynth/tasks"
)

// Fleet is one process's connections.
type Fleet struct {
	Config   config.Config
	Log      *slog.Logger
	RedisOpt asynq.RedisConnOpt
	Redis    redis.UniversalClient
	Store    *store.Store
	OpenAI   *openaibatch.Client
	Queue    *asynq.Client
	Deps     *pipeline.Deps
	ID       string
}

// Open connects to Redis and MongoDB (creating indexes) and builds the OpenAI client. Errors never quote
// a URI: it may hold a password.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Fleet, error) {
	if cfg.RedisURL == "" {
		return nil, fmt.Errorf("REDIS_URL is not set (use `batchsynth dev` for embedded services)")
	}
	if cfg.MongoURI == "" {
		return nil, fmt.Errorf("MONGODB_URI is not set (use `batchsynth dev` for embedded services)")
	}
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: cannot parse it (redis://, rediss://, redis-sentinel:// are accepted)")
	}
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("REDIS_URL: unsupported client type")
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("error reaching Redis at %s: %v", config.MaskURL(cfg.RedisURL), err)
	}
	st, err := store.Open(ctx, cfg.MongoURI, cfg.Database, store.OpenOptions{MaxBulk: cfg.MongoMaxBulk})
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	f := &Fleet{
		Config: cfg, Log: log, RedisOpt: opt, Redis: rc, Store: st,
		OpenAI: openaibatch.New(openaibatch.Options{APIKey: cfg.OpenAIKey, BaseURL: cfg.OpenAIBaseURL, MaxRetries: 3, Timeout: 2 * time.Minute}),
		Queue:  asynq.NewClientFromRedisClient(rc),
		ID:     processID(host),
	}
	f.Deps = &pipeline.Deps{Store: st, OpenAI: f.OpenAI, Queue: f.Queue, Redis: rc, Config: cfg, Log: log, Owner: f.ID}
	return f, nil
}

// processID names this process in leases: host and pid, plus random characters so that several fleets in one
// process (dev mode, tests) and pid 1 in every container never share a name. (NewID begins with the time in
// milliseconds; its random tail is what tells two fleets opened together apart.)
func processID(host string) string {
	id := pipeline.NewID("p")
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), id[len(id)-8:])
}

// Close releases the connections. It waits at most closeTimeout for MongoDB operations still in flight (a
// handler whose task was handed back at shutdown) before cutting their connections: the process must not
// outlive its shutdown timeout by much.
func (f *Fleet) Close() {
	_ = f.Redis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = f.Store.Close(ctx)
}

const closeTimeout = time.Second

// RunWorker runs the asynq server with the four handlers until ctx ends, then shuts down within the
// configured timeout: tasks still running after it go back to pending (asynq requeues them).
func (f *Fleet) RunWorker(ctx context.Context) error {
	srv := asynq.NewServerFromRedisClient(f.Redis, asynq.Config{
		Concurrency:     f.Config.Concurrency,
		Queues:          tasks.QueueWeights(),
		ShutdownTimeout: f.Config.ShutdownTimeout,
		RetryDelayFunc:  handlers.RetryDelay,
		// A busy apply (another worker holds the batch) is not a failure: it must not use up the task's
		// retries, or the task would end archived and its fixed id would block the sweep's re-enqueue.
		IsFailure:   handlers.IsFailure,
		Logger:      logging.Asynq{L: f.Log.With("role", "worker")},
		LogLevel:    asynq.WarnLevel,
		BaseContext: func() context.Context { return context.WithoutCancel(ctx) },
	})
	mux := asynq.NewServeMux()
	mux.Use(handlers.Logging(f.Log.With("role", "worker")))
	handlers.Register(mux, f.Deps)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("error starting worker: %w", err)
	}
	f.Log.Info("worker started", "worker_id", f.ID, "concurrency", f.Config.Concurrency)
	<-ctx.Done()
	f.Log.Info("worker stopping: no new tasks; finishing or handing back running ones", "timeout", f.Config.ShutdownTimeout)
	srv.Stop()
	srv.Shutdown()
	return nil
}

// RunScheduler competes for the scheduler lease and, while active, polls batches and sweeps.
func (f *Fleet) RunScheduler(ctx context.Context) error {
	f.Log.Info("scheduler started; competing for the lease", "scheduler_id", f.ID, "lease", f.Config.LeaseDuration)
	return scheduler.Run(ctx, scheduler.Options{Deps: f.Deps, Redis: f.Redis, ID: f.ID, Log: f.Log.With("role", "scheduler")})
}
