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
	"github.com/floridify/batchsynth/internal/pipeline"
)

// Exit codes, documented in the root command's help. The typed errors of the pipeline's rules map to them here
// (exitFor) and nowhere else.
const (
	exitFailure  = 1 // any other error, a refused submission included (the message names the field)
	exitNotFound = 2 // no job or batch has the id given
	exitConflict = 3 // the action does not apply to where the job or batch stands (job finished, batch ended)
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
		code, msg := exitFor(err)
		if msg != "" {
			fmt.Fprintln(os.Stderr, msg)
		}
		os.Exit(code)
	}
}

// exitFor is the exit code and message of a command's error.
func exitFor(err error) (int, string) {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code, ee.msg
	case errors.Is(err, pipeline.ErrNotFound):
		return exitNotFound, "error: " + err.Error()
	case errors.Is(err, pipeline.ErrJobFinished), errors.Is(err, pipeline.ErrNotCancellable):
		return exitConflict, "error: " + err.Error()
	}
	return exitFailure, "error: " + err.Error()
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "batchsynth",
		Short: "Enrich Floridify dictionary entries through the OpenAI Batch API",
		Long: `Enrich Floridify dictionary entries through the OpenAI Batch API.

Exit codes: 0 success; 1 an error (a refused submission names the field at fault); 2 no job or batch
with the id given; 3 the action does not apply to where the job or batch stands (cancelling a job that is
done or cancelled, or a batch that has ended).`,
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

func newCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB|BATCH",
		Short: "Cancel a job or batch: cancels at OpenAI, applies what completed, marks the rest cancelled",
		Long: `Cancel a job or batch: cancels at OpenAI, applies what completed, marks the rest cancelled.
A batch still being built is marked, and cancelled at OpenAI as soon as it is created.
Exits 2 for an unknown id, 3 for a job that is done or cancelled or a batch that has ended.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			id := args[0]
			n, err := f.Deps.CancelJob(cmd.Context(), id)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "job %s cancelled (%d pending requests cancelled)\n", id, n)
				return nil
			}
			if !errors.Is(err, pipeline.ErrNotFound) {
				return err
			}
			if err := f.Deps.CancelBatch(cmd.Context(), id); err != nil {
				if errors.Is(err, pipeline.ErrNotFound) {
					return &exitError{code: exitNotFound, msg: fmt.Sprintf("no job or batch with id %q", id)}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "batch %s: cancel requested\n", id)
			return nil
		},
	}
}

func newRetryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "retry JOB",
		Short: "Resubmit a job's dead and cancelled requests",
		Long:  "Resubmit a job's dead and cancelled requests. Exits 2 for an unknown id.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := f.Deps.RetryJob(cmd.Context(), args[0])
			if errors.Is(err, pipeline.ErrNotFound) {
				return &exitError{code: exitNotFound, msg: fmt.Sprintf("no job with id %q", args[0])}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s: %d request(s) back to pending\n", args[0], n)
			return nil
		},
	}
}
