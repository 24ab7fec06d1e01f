package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/web"
	"github.com/floridify/batchsynth/scheduler"
)

func newServeCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the web process: HTTP API, dashboard, Asynqmon at /monitoring, /metrics, /healthz",
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			if addr == "" {
				addr = f.Config.HTTPAddr
			}
			return runWeb(cmd.Context(), f, addr, nil)
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "listen address (default BATCHSYNTH_HTTP_ADDR or 127.0.0.1:8080)")
	return c
}

func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: the four asynq handlers (run as many as you like, on any hosts)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			return f.RunWorker(cmd.Context())
		},
	}
}

func newSchedulerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scheduler",
		Short: "Run the scheduler: polls in-flight batches and sweeps (one is active; others stand by)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			if _, err := scheduler.ParsePeriodicJobs(cfg.PeriodicJobs); err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			return f.RunScheduler(cmd.Context())
		},
	}
}

// runWeb serves until ctx ends. ready, when set, receives the bound address.
func runWeb(ctx context.Context, f *fleet.Fleet, addr string, ready chan<- string) error {
	log := f.Log.With("role", "web")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", addr, err)
	}
	if f.Config.APIToken == "" && !isLoopback(ln.Addr()) {
		_ = ln.Close()
		return fmt.Errorf("BATCHSYNTH_API_TOKEN is not set: the API would be open on %s; set a token, or listen on 127.0.0.1", ln.Addr())
	}
	reg := prometheus.NewRegistry()
	src := metrics.NewSource(f.Store)
	insp := asynq.NewInspectorFromRedisClient(f.Redis)
	if err := metrics.Register(reg, metrics.Options{Source: src, Inspector: insp, Log: log}); err != nil {
		_ = ln.Close()
		return fmt.Errorf("error registering metrics: %w", err)
	}
	srv := &web.Server{
		Deps: f.Deps, RedisOpt: f.RedisOpt, Redis: f.Redis, Token: f.Config.APIToken, Log: log,
		Registry: reg, Metrics: src, MonitoringWritable: f.Config.MonitoringWritable,
	}
	defer srv.Close()
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Large submissions stream in for a while; idle keep-alives should not hold sockets forever.
		ReadTimeout: 5 * time.Minute,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("web listening", "addr", ln.Addr().String(), "auth", f.Config.APIToken != "", "monitoring_writable", srv.MonitoringWritable)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
