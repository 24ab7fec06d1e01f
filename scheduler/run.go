package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/floridify/batchsynth/internal/logging"
	"github.com/floridify/batchsynth/internal/pipeline"
)

// Options configure Run.
type Options struct {
	Deps  *pipeline.Deps
	Redis redis.UniversalClient
	ID    string
	Log   *slog.Logger
}

// Run competes for the lease until ctx ends. While it holds the lease it runs the PeriodicTaskManager
// (polls) and the sweeps; when it loses the lease it stops both, so at most one scheduler enqueues at a time.
func Run(ctx context.Context, o Options) error {
	cfg := o.Deps.Config
	// The key lives 3/4 of the lease period and every scheduler checks it every 1/4: a holder that dies stops
	// renewing, its key expires at most 3/4 of a period after its last renewal, and a standby sees that
	// within the next quarter, so it takes over within one lease period of the holder's death. A holder
	// survives two missed renewals.
	lease := &Lease{RDB: o.Redis, ID: o.ID, Duration: cfg.LeaseDuration * 3 / 4}
	periodic, perr := ParsePeriodicJobs(cfg.PeriodicJobs)
	if perr != nil {
		o.Log.Error("BATCHSYNTH_PERIODIC_JOBS is invalid; periodic jobs are off", "error", perr)
	}
	log := o.Log.With("scheduler_id", o.ID)
	tick := time.NewTicker(cfg.LeaseDuration / 4)
	defer tick.Stop()
	var mgr *asynq.PeriodicTaskManager
	var sweepStop context.CancelFunc
	stepDown := func() {
		if mgr != nil {
			mgr.Shutdown()
			mgr = nil
		}
		if sweepStop != nil {
			sweepStop()
			sweepStop = nil
		}
	}
	defer func() {
		stepDown()
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		lease.Release(rctx)
	}()
	for {
		held, err := lease.TryAcquire(ctx)
		if err != nil {
			log.Warn("lease check failed", "error", err)
			held = false
		}
		switch {
		case held && mgr == nil:
			log.Info("became the active scheduler")
			m, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
				PeriodicTaskConfigProvider: &Provider{Store: o.Deps.Store, Interval: cfg.PollInterval},
				RedisUniversalClient:       o.Redis,
				SyncInterval:               cfg.SyncInterval,
				SchedulerOpts:              &asynq.SchedulerOpts{Logger: logging.Asynq{L: log}, LogLevel: asynq.WarnLevel},
			})
			if err == nil {
				err = m.Start()
			}
			if err != nil {
				log.Error("could not start the periodic task manager", "error", err)
				lease.Release(ctx)
				break
			}
			mgr = m
			sctx, cancel := context.WithCancel(ctx)
			sweepStop = cancel
			go sweepLoop(sctx, o.Deps, periodic, log)
		case !held && mgr != nil:
			log.Warn("lost the scheduler lease; standing by")
			stepDown()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func sweepLoop(ctx context.Context, d *pipeline.Deps, periodic []PeriodicJob, log *slog.Logger) {
	t := time.NewTicker(d.Config.SweepInterval)
	defer t.Stop()
	for {
		if err := Sweep(ctx, d); err != nil && ctx.Err() == nil {
			log.Warn("sweep incomplete", "error", err)
		}
		if err := RunPeriodic(ctx, d, periodic, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("periodic jobs incomplete", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
