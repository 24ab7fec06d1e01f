package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/estimate"
	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

func newEstimateCmd() *cobra.Command {
	var words, components, mode, model string
	var asJSON, offline bool
	c := &cobra.Command{
		Use:   "estimate",
		Short: "Estimate the tokens and dollars of a words file before spending them",
		Long: `Plans and renders every request the builder would send for a words file (the same code, byte for byte),
counts input tokens with tiktoken (o200k_base), models output tokens per component, and prices them at
immediate, batch and (GPT-5 family) batch-with-cached-input rates, per component and in total, for each mode.

Offline by default: every field of every submitted definition counts as missing, and plain-text words (with
no definitions in the file) are skipped. With MONGODB_URI set and reachable (and no --offline), it plans
against Floridify's stored fields and counts answers the result cache already holds.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if words == "" {
				return fmt.Errorf("--words is required")
			}
			comps, err := synthesis.ParseComponents(components)
			if err != nil {
				return fmt.Errorf("--components: %w", err)
			}
			modes := synthesis.Modes()
			if mode != "all" {
				found := false
				for _, m := range modes {
					found = found || m == mode
				}
				if !found {
					return fmt.Errorf("--mode %q: want all, %s", mode, strings.Join(modes, ", "))
				}
				modes = []string{mode}
			} else {
				modes = []string{synthesis.ModePerComponent, synthesis.ModePacked, synthesis.ModePackedWord}
			}
			var r io.Reader = os.Stdin
			if words != "-" {
				f, err := os.Open(words)
				if err != nil {
					return fmt.Errorf("--words: %w", err)
				}
				defer f.Close()
				r = f
			}
			parsed, err := input.Parse(r)
			if parsed != nil {
				for _, e := range parsed.Errors {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", words, formatInputError(e))
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", words, err)
			}
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			var src estimate.Planner = estimate.Offline{}
			if cfg.MongoURI != "" && !offline {
				st, closeDB, err := openEstimateDB(cmd.Context(), cfg.MongoURI, cfg.Database)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "estimating offline: %v\n", err)
				} else {
					defer closeDB()
					src = estimate.Database{Store: st}
				}
			}
			rep, err := estimate.Run(cmd.Context(), parsed.Words, estimate.Options{Components: comps, Modes: modes,
				Model: cmp.Or(model, cfg.Model)}, src)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.WriteText(cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&words, "words", "", "words file: JSONL ({\"word\", \"definitions\"}) or plain text; - for stdin")
	c.Flags().StringVar(&components, "components", "default", "components: a comma list, all, or default ("+strings.Join(synthesis.Names(), ", ")+")")
	c.Flags().StringVar(&mode, "mode", "all", "request mode: all, packed, packed-word or per-component")
	c.Flags().StringVar(&model, "model", "", "model of every request, or auto to route components by tier (default BATCHSYNTH_MODEL or "+config.ModelDefault+")")
	c.Flags().BoolVar(&asJSON, "json", false, "print the estimate as JSON")
	c.Flags().BoolVar(&offline, "offline", false, "never consult MongoDB, even when MONGODB_URI is set")
	return c
}

// openEstimateDB connects to Floridify's database for the estimate, giving up quickly: an estimate must not
// wait on a database it can do without.
func openEstimateDB(ctx context.Context, uri, database string) (*store.Store, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := store.Open(ctx, uri, database, store.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	return st, func() { _ = st.Close(context.Background()) }, nil
}
