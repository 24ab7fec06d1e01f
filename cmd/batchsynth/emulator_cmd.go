package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/emulator"
)

// newEmulatorCmd runs the OpenAI Files + Batches API emulator as an HTTP server.
func newEmulatorCmd() *cobra.Command {
	var (
		addr        string
		cfg         emulator.Config
		tokenBudget int64
		debug       bool
	)
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Serve an OpenAI Files + Batches API emulator with synthetic, schema-valid answers",
		Long: `Serve an in-memory emulator of OpenAI's Files and Batches APIs (and /v1/chat/completions)
on --addr. Every answer is synthetic: responses carry the header X-Batchsynth-Emulator: synthetic
and every chat.completion has system_fingerprint "batchsynth-emulator".

Point batchsynth (or any OpenAI client) at it with OPENAI_BASE_URL=http://<addr>/v1/.
The --rate-* flags inject faults (fractions 0..1); see the emulator package documentation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg.Logger = log
			if tokenBudget > 0 {
				cfg.TokenBudget = map[string]int64{"": tokenBudget}
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid emulator flags: %w", err)
			}
			return runEmulator(cmd.Context(), addr, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8081", "address to listen on")
	f.DurationVar(&cfg.ValidatingFor, "validating", 2*time.Second, "how long a batch stays validating")
	f.DurationVar(&cfg.InProgressFor, "in-progress", 3*time.Second, "how long a batch stays in_progress (lines complete evenly)")
	f.DurationVar(&cfg.FinalizingFor, "finalizing", time.Second, "how long a batch stays finalizing")
	f.DurationVar(&cfg.CancellingFor, "cancelling", time.Second, "how long a cancelled batch stays cancelling")
	f.DurationVar(&cfg.CompletionWindow, "completion-window", emulator.CompletionWindowDefault, "how long a batch may run before it expires on its own")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed for synthetic content and faults")
	f.Int64Var(&tokenBudget, "token-budget", 0, "enqueued input-token budget of each model (0: unlimited)")
	f.IntVar(&cfg.MaxLines, "max-lines", emulator.MaxLinesDefault, "most requests per batch (too_many_tasks above)")
	f.Int64Var(&cfg.MaxFileBytes, "max-file-bytes", emulator.MaxFileBytesDefault, "largest batch input file in bytes")
	f.BoolVar(&debug, "debug", false, "log every request outcome")

	fl := &cfg.Faults
	f.Float64Var(&fl.Rate429, "rate-429", 0, "fraction of /v1 requests answered 429 (with Retry-After)")
	f.DurationVar(&fl.RetryAfter, "retry-after", time.Second, "Retry-After of injected 429s")
	f.Float64Var(&fl.Rate500, "rate-500", 0, "fraction of /v1 requests answered 500")
	f.Float64Var(&fl.Rate503, "rate-503", 0, "fraction of /v1 requests answered 503")
	f.Float64Var(&fl.RateSlow, "rate-slow", 0, "fraction of /v1 requests answered after --slow-delay")
	f.DurationVar(&fl.SlowDelay, "slow-delay", 30*time.Second, "delay of slow answers")
	f.Float64Var(&fl.RateLoseCreate, "rate-lose-create", 0, "fraction of batch creates whose response is lost (the batch exists)")
	f.Float64Var(&fl.RateFileNotFound, "rate-file-not-found", 0, `fraction of batch creates answered "Cannot find file" right after upload`)
	f.DurationVar(&fl.FileNotFoundWindow, "file-not-found-window", emulator.FileNotFoundWindowDefault, "how long after upload --rate-file-not-found applies")
	f.Float64Var(&fl.RateLine4xx, "rate-line-4xx", 0, "fraction of lines answered 400 in the error file")
	f.Float64Var(&fl.RateRefusal, "rate-refusal", 0, "fraction of lines answered with a refusal")
	f.Float64Var(&fl.RateLength, "rate-length", 0, `fraction of lines cut off (finish_reason "length")`)
	f.Float64Var(&fl.RateInvalidSchema, "rate-invalid-schema", 0, "fraction of lines answered with JSON invalid for their schema")
	f.BoolVar(&fl.Shuffle, "shuffle", false, "write output lines in random order")
	f.Float64Var(&fl.RateBatchFail, "rate-batch-fail", 0, "fraction of batches failed at validation")
	f.Float64Var(&fl.RateExpire, "rate-expire", 0, "fraction of batches expired halfway (partial output)")
	f.Float64Var(&fl.RateZeroSuccess, "rate-zero-success", 0, "fraction of batches completed with every line failed")
	return cmd
}

// runEmulator serves the emulator on addr until ctx ends or SIGINT/SIGTERM.
func runEmulator(ctx context.Context, addr string, cfg emulator.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           emulator.New(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	log.Info("OpenAI Batch API emulator listening; all answers are synthetic",
		slog.String("addr", ln.Addr().String()),
		slog.String("base_url", "http://"+ln.Addr().String()+"/v1/"),
		slog.Duration("validating", cfg.ValidatingFor), slog.Duration("in_progress", cfg.InProgressFor),
		slog.Duration("finalizing", cfg.FinalizingFor), slog.Int64("seed", cfg.Seed))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("error serving emulator: %w", err)
	case <-ctx.Done():
	}
	log.Info("emulator shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("error shutting down emulator: %w", err)
	}
	return nil
}
