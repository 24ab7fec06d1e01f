package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

type submitFlags struct {
	words      string
	components string
	model      string
	mode       string
	force      bool
	noCache    bool
}

func (s *submitFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&s.words, "words", "", "words file: plain text (one word per line) or JSONL ({\"word\", \"definitions\"}); - for stdin")
	c.Flags().StringVar(&s.components, "components", "default", "components: a comma list, all, or default ("+strings.Join(synthesis.Names(), ", ")+")")
	c.Flags().StringVar(&s.model, "model", "", "model for every request of the job (default BATCHSYNTH_MODEL)")
	c.Flags().StringVar(&s.mode, "mode", "", "request mode: packed, packed-word or per-component (default BATCHSYNTH_MODE)")
	c.Flags().BoolVar(&s.force, "force", false, "regenerate components that are already present")
	c.Flags().BoolVar(&s.noCache, "no-cache", false, "send every request, even one whose identical body already has a stored answer")
}

// readSubmission parses the words file and reports rejected lines on stderr.
func (s *submitFlags) readSubmission(errOut io.Writer) (pipeline.Submission, error) {
	if s.words == "" {
		return pipeline.Submission{}, fmt.Errorf("--words is required")
	}
	comps, err := synthesis.ParseComponents(s.components)
	if err != nil {
		return pipeline.Submission{}, fmt.Errorf("--components: %w", err)
	}
	var r io.Reader = os.Stdin
	if s.words != "-" {
		f, err := os.Open(s.words)
		if err != nil {
			return pipeline.Submission{}, fmt.Errorf("--words: %w", err)
		}
		defer f.Close()
		r = f
	}
	parsed, err := input.Parse(r)
	if parsed != nil {
		for _, e := range parsed.Errors {
			fmt.Fprintf(errOut, "%s: %s\n", s.words, formatInputError(e))
		}
	}
	if err != nil {
		return pipeline.Submission{}, fmt.Errorf("%s: %w", s.words, err)
	}
	return pipeline.Submission{Source: "file:" + s.words, Words: parsed.Words, Errors: parsed.Errors,
		Components: comps, Mode: s.mode, Model: s.model, Force: s.force, NoCache: s.noCache}, nil
}

func formatInputError(e store.InputError) string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	if e.Word != "" {
		fmt.Fprintf(&b, "%q: ", e.Word)
	}
	b.WriteString(e.Message)
	return b.String()
}

func newProcessCmd() *cobra.Command {
	var sf submitFlags
	var wait, asJSON bool
	c := &cobra.Command{
		Use:   "process",
		Short: "Submit a words file as a job through Redis; --wait follows it to the end",
		RunE: func(cmd *cobra.Command, _ []string) error {
			sub, err := sf.readSubmission(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			f, err := openFleet(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			job, err := f.Deps.Submit(cmd.Context(), sub)
			if err != nil {
				return err
			}
			if !wait {
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"job_id": job.ID})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "job %s submitted: %d words\n", job.ID, job.WordsTotal)
				return nil
			}
			p, err := waitJob(cmd.Context(), f.Deps, job.ID, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return reportJob(cmd.OutOrStdout(), p, asJSON)
		},
	}
	sf.register(c)
	c.Flags().BoolVar(&wait, "wait", false, "follow the job until every request is settled; exit 1 if any ended dead")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// waitJob follows a job until it finishes: a progress bar (settled / total, batches, ETA) when out is a
// terminal, a plain line whenever the numbers change otherwise. It reads the job's progress as status and the
// API do; the fleet's scheduler records the job done.
func waitJob(ctx context.Context, d *pipeline.Deps, jobID string, out io.Writer) (*pipeline.JobProgress, error) {
	start := time.Now()
	var bar *progressbar.ProgressBar
	tty := isTerminal(out)
	last := ""
	for {
		p, err := d.Progress(ctx, jobID)
		if err != nil {
			if bar != nil {
				_ = bar.Exit()
			}
			return nil, err
		}
		if tty {
			bar = drawBar(bar, out, p)
		} else if line := progressLine(p, time.Since(start)); line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if p.Finished {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(out)
			}
			return p, nil
		}
		// Large jobs are read less often: each read goes over all of the job's requests.
		wait := 500 * time.Millisecond
		if p.Total > 100_000 {
			wait = 3 * time.Second
		}
		select {
		case <-ctx.Done():
			if bar != nil {
				_ = bar.Exit()
			}
			return p, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// drawBar creates the bar on first use (a spinner while the job is being expanded and its size unknown)
// and moves it to the job's current numbers.
func drawBar(bar *progressbar.ProgressBar, out io.Writer, p *pipeline.JobProgress) *progressbar.ProgressBar {
	if bar == nil {
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionFullWidth(),
		)
	}
	expanded := p.Status.Expanded()
	if expanded && int64(p.Total) != bar.GetMax64() {
		bar.ChangeMax64(int64(max(p.Total, 1)))
	}
	bar.Describe(fmt.Sprintf("%s %s · %d batches · pending %d · in batch %d · dead %d", p.Job.ID, p.Status, len(p.Batches),
		p.States[store.StatePending], p.States[store.StateClaimed]+p.States[store.StateSubmitted], p.States[store.StateDead]))
	if expanded && p.Total == 0 {
		_ = bar.Set64(1)
	} else {
		_ = bar.Set64(int64(p.Settled))
	}
	return bar
}

// progressLine is the plain-text progress of a job: for logs, pipes and CI.
func progressLine(p *pipeline.JobProgress, elapsed time.Duration) string {
	pct := 0.0
	if p.Total > 0 {
		pct = 100 * float64(p.Settled) / float64(p.Total)
	}
	eta := ""
	if p.Settled > 0 && p.Settled < p.Total {
		rem := time.Duration(float64(elapsed) * float64(p.Total-p.Settled) / float64(p.Settled))
		eta = fmt.Sprintf(" eta %s", rem.Round(time.Second))
	}
	return fmt.Sprintf("job %s [%s] %d/%d settled (%.0f%%) pending %d, in batch %d, succeeded %d, dead %d, cancelled %d; %d batches%s",
		p.Job.ID, p.Status, p.Settled, p.Total, pct, p.States[store.StatePending],
		p.States[store.StateClaimed]+p.States[store.StateSubmitted], p.States[store.StateSucceeded], p.States[store.StateDead],
		p.States[store.StateCancelled], len(p.Batches), eta)
}

// reportJob prints the final summary and returns an exit error if any request ended dead.
func reportJob(out io.Writer, p *pipeline.JobProgress, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(out).Encode(p); err != nil {
			return err
		}
	} else {
		printJob(out, p)
	}
	if n := p.States[store.StateDead]; n > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d request(s) ended dead; see `batchsynth status %s`", n, p.Job.ID)}
	}
	return nil
}

func printJob(out io.Writer, p *pipeline.JobProgress) {
	j := p.Job
	fmt.Fprintf(out, "job %s (%s)\n", j.ID, p.Status)
	fmt.Fprintf(out, "  words        %d (%d not found), definitions %d, input errors %d\n", j.WordsTotal, len(j.WordsMissing), j.Definitions, len(j.InputErrors))
	fmt.Fprintf(out, "  components   %s  mode %s  model %s\n", strings.Join(j.Components, ","), j.Mode, j.Model)
	fmt.Fprintf(out, "  requests     %d: succeeded %d, pending %d, in batch %d, dead %d, cancelled %d\n", p.Total,
		p.States[store.StateSucceeded], p.States[store.StatePending], p.States[store.StateClaimed]+p.States[store.StateSubmitted],
		p.States[store.StateDead], p.States[store.StateCancelled])
	fmt.Fprintf(out, "  batches      %d\n", len(p.Batches))
	fmt.Fprintf(out, "  tokens       input %d (cached %d), output %d\n", p.Usage.InputTokens, p.Usage.CachedTokens, p.Usage.OutputTokens)
	fmt.Fprintf(out, "  cost         $%.4f at batch prices, $%.4f at immediate prices (saved $%.4f)\n", p.CostUSD, p.ImmediateUSD, p.SavedUSD)
	for i, w := range j.WordsMissing {
		if i == 10 {
			fmt.Fprintf(out, "  ... and %d more not found\n", len(j.WordsMissing)-10)
			break
		}
		fmt.Fprintf(out, "  not found: %s\n", w)
	}
}
