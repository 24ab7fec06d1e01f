package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [JOB|BATCH]",
		Short: "Show recent jobs and batches, or one job or batch",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			out := cmd.OutOrStdout()
			ctx := cmd.Context()
			if len(args) == 1 {
				id := args[0]
				if p, err := f.Deps.Progress(ctx, id); err == nil {
					if asJSON {
						return json.NewEncoder(out).Encode(p)
					}
					printJob(out, p)
					return nil
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				b, err := f.Deps.BatchStatus(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return &exitError{code: 2, msg: fmt.Sprintf("no job or batch with id %q", id)}
				}
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(out).Encode(b)
				}
				printBatch(out, b)
				return nil
			}
			jobs, err := f.Deps.RecentJobs(ctx, 20)
			if err != nil {
				return err
			}
			batches, err := f.Deps.RecentBatches(ctx, store.BatchFilter{}, 20)
			if err != nil {
				return err
			}
			totals, err := f.Deps.FleetTotals(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"jobs": jobs, "batches": batches, "totals": totals})
			}
			fmt.Fprintf(out, "requests: %v\nbatches:  %v\ntokens:   in %d (cached %d), out %d; cost $%.4f (immediate $%.4f)\n\n",
				totals.States, totals.Batches, totals.Usage.InputTokens, totals.Usage.CachedTokens, totals.Usage.OutputTokens, totals.CostUSD, totals.ImmediateUSD)
			fmt.Fprintln(out, "recent jobs:")
			for _, j := range jobs {
				fmt.Fprintf(out, "  %s  %-9s %5d words  %s  %s\n", j.ID, j.Status, j.WordsTotal, strings.Join(j.Components, ","), j.CreatedAt.Format("2006-01-02 15:04:05"))
			}
			fmt.Fprintln(out, "recent batches:")
			for _, b := range batches {
				fmt.Fprintf(out, "  %s  %-9s %-11s %5d requests  %s\n", b.ID, b.State, b.OpenAIStatus, b.RequestCount, b.OpenAIBatchID)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printBatch(out io.Writer, b *pipeline.BatchStatus) {
	fmt.Fprintf(out, "batch %s (%s; OpenAI %s %s)\n", b.ID, b.State, b.OpenAIBatchID, b.OpenAIStatus)
	fmt.Fprintf(out, "  model %s, %d requests, %d bytes, ~%d input tokens estimated\n", b.Model, b.RequestCount, b.Bytes, b.InputTokensEst)
	fmt.Fprintf(out, "  counts total %d, completed %d, failed %d; polled %d times\n", b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed, b.PollCount)
	sum := b.Summary
	fmt.Fprintf(out, "  requests: succeeded %d, retried %d, dead %d, cancelled %d, in flight %d\n", sum.Succeeded, sum.Retried, sum.Dead, sum.Cancelled, sum.InFlight)
	fmt.Fprintf(out, "  usage in %d (cached %d), out %d; cost $%.4f (immediate $%.4f)\n", b.Usage.InputTokens, b.Usage.CachedTokens, b.Usage.OutputTokens, b.CostUSD, b.ImmediateUSD)
	for _, h := range b.StatusHistory {
		fmt.Fprintf(out, "  %s  %s\n", h.At.Format("15:04:05"), h.Status)
	}
	for _, e := range b.Errors {
		fmt.Fprintf(out, "  error %s: %s\n", e.Code, e.Message)
	}
}

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective settings (secrets masked)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig()
			for _, row := range cfg.Masked() {
				fmt.Fprintf(cmd.OutOrStdout(), "%-28s %s\n", row[0], row[1])
			}
			return err
		},
	}
}
