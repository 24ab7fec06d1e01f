package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/web"
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
	srv := &web.Server{Deps: f.Deps, RedisOpt: f.RedisOpt, Token: f.Config.APIToken, Log: f.Log.With("role", "web")}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	f.Log.Info("web listening", "addr", ln.Addr().String())
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
