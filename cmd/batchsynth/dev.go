package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/devstack"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/pipeline"
)

func newDevCmd() *cobra.Command {
	var sf submitFlags
	var serve bool
	var dataDir string
	var workers int
	var pace time.Duration
	c := &cobra.Command{
		Use:   "dev",
		Short: "Run web, worker and scheduler in one process on embedded Redis, FerretDB and the Batch API emulator",
		Long: `dev needs no setup: without REDIS_URL it runs an in-process Redis (miniredis), without MONGODB_URI an
in-process MongoDB wire server (FerretDB, SQLite under --data), and without OPENAI_API_KEY the in-repo Batch
API emulator, whose answers are synthetic. With --words it processes the file to the end, prints a summary and
exits (non-zero if a request ended dead); --serve keeps it running afterwards.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			if sf.words == "" && !serve {
				return fmt.Errorf("give --words FILE to process, or --serve to run the fleet")
			}
			var sub *pipeline.Submission
			if sf.words != "" {
				s, err := sf.readSubmission(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				sub = &s
			}
			// Demo pace: fast enough to watch, slow enough to see every state.
			if !cfg.IsSet("BATCHSYNTH_POLL_INTERVAL") {
				cfg.PollInterval = time.Second
			}
			for _, d := range []*time.Duration{&cfg.FlushDelay, &cfg.SweepInterval, &cfg.SyncInterval} {
				*d = min(*d, 2*time.Second)
			}
			cfg.LeaseDuration = min(cfg.LeaseDuration, 3*time.Second)
			var closers []func()
			defer func() {
				for i := len(closers) - 1; i >= 0; i-- {
					closers[i]()
				}
			}()
			if cfg.RedisURL == "" {
				r, err := devstack.StartRedis(ctx)
				if err != nil {
					return fmt.Errorf("error starting embedded Redis: %w", err)
				}
				closers = append(closers, r.Close)
				cfg.RedisURL = r.URL()
				log.Info("embedded Redis (miniredis)", "url", cfg.RedisURL)
			}
			if cfg.MongoURI == "" {
				dir, _ := filepath.Abs(filepath.Join(dataDir, "ferretdb"))
				m, err := devstack.StartMongo(ctx, dir, log)
				if err != nil {
					return fmt.Errorf("error starting embedded FerretDB: %w", err)
				}
				closers = append(closers, m.Close)
				cfg.MongoURI = m.URI()
				log.Info("embedded MongoDB wire server (FerretDB, SQLite)", "dir", dir)
			}
			if cfg.OpenAIKey == "" {
				emu := emulator.New(emulator.Config{ValidatingFor: pace, InProgressFor: 2 * pace, FinalizingFor: pace, CancellingFor: pace,
					Logger: log.With("component", "emulator")})
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return err
				}
				hs := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = hs.Serve(ln) }()
				closers = append(closers, func() { _ = hs.Close() })
				cfg.OpenAIKey = "sk-emulator"
				cfg.OpenAIBaseURL = "http://" + ln.Addr().String() + "/v1/"
				log.Info("OpenAI Batch API emulator (synthetic answers)", "url", cfg.OpenAIBaseURL)
			}
			f, err := fleet.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			closers = append(closers, f.Close)
			runCtx, stopRoles := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for i := 0; i < workers; i++ {
				wg.Go(func() { _ = f.RunWorker(runCtx) })
			}
			wg.Go(func() { _ = f.RunScheduler(runCtx) })
			ready := make(chan string, 1)
			wg.Go(func() {
				if err := runWeb(runCtx, f, cfg.HTTPAddr, ready); err != nil {
					log.Warn("web not started", "error", err)
					close(ready)
				}
			})
			// Roles stop before the stores close (asynq hands tasks back to Redis while it shuts down).
			closers = append(closers, func() { stopRoles(); wg.Wait() })
			if addr, ok := <-ready; ok {
				fmt.Fprintf(out, "dashboard and API: http://%s/  (Asynqmon: http://%s/monitoring/)\n", addr, addr)
			}
			var result error
			if sub != nil {
				job, err := f.Deps.Submit(ctx, *sub)
				if err != nil {
					return err
				}
				p, err := waitJob(ctx, f.Deps, job.ID, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				result = reportJob(out, p, false)
			}
			if serve {
				fmt.Fprintln(out, "serving; Ctrl-C to stop")
				<-ctx.Done()
			}
			return result
		},
	}
	sf.register(c)
	c.Flags().BoolVar(&serve, "serve", false, "keep the fleet running after the words are processed")
	c.Flags().StringVar(&dataDir, "data", "data", "directory for the embedded MongoDB's data")
	c.Flags().IntVar(&workers, "workers", 2, "worker servers to run in this process")
	c.Flags().DurationVar(&pace, "pace", time.Second, "emulator pace: how long a batch validates (in progress twice that)")
	return c
}
