// Command batchsynth runs the batch synthesis fleet for Floridify: web, worker, scheduler, or all of them
// on embedded services (dev), plus commands to submit words and watch jobs.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/logging"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	root := newRootCmd()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "batchsynth",
		Short:         "Enrich Floridify dictionary entries through the OpenAI Batch API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCmd(), newServeCmd(), newWorkerCmd(), newSchedulerCmd(), newProcessCmd(), newStatusCmd(),
		newCancelCmd(), newRetryCmd(), newConfigCmd(), newEmulatorCmd(), newWordnetCmd(), newEstimateCmd())
	return root
}

// loadConfig reads the environment; errors name the variable at fault.
func loadConfig() (config.Config, *slog.Logger, error) {
	cfg, err := config.FromEnv(nil)
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return cfg, log, fmt.Errorf("configuration: %w", err)
	}
	return cfg, log, nil
}

// openFleet connects a production process (REDIS_URL and MONGODB_URI required).
func openFleet(ctx context.Context) (*fleet.Fleet, error) {
	cfg, log, err := loadConfig()
	if err != nil {
		return nil, err
	}
	return fleet.Open(ctx, cfg, log)
}
