package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// Periodic jobs: submissions the active scheduler makes on a schedule, configured in
// BATCHSYNTH_PERIODIC_JOBS as a JSON list, for example
//
//	[{"name": "nightly-new-words", "schedule": "0 3 * * *", "kind": "new_words"},
//	 {"name": "weekly-reprocess", "schedule": "0 4 * * 0", "kind": "reprocess", "from_models": ["gpt-4o-mini"], "model": "gpt-5-mini"}]
//
// Schedules are cron (five fields, UTC) or descriptors (@daily, @every 6h). Each job's last run lives in
// MongoDB (store.CollPeriodic), so a restarted or replaced scheduler neither skips nor repeats a run.

// Periodic job kinds.
const (
	// KindNewWords submits the words added to Floridify's words collection since the last run.
	KindNewWords = "new_words"
	// KindReprocess resubmits (forced) the words whose enrichments came from an older prompt version, or
	// from one of FromModels.
	KindReprocess = "reprocess"
)

// PeriodicMaxWordsDefault bounds one run, so that a backlog is spread over several runs instead of one bill.
const PeriodicMaxWordsDefault = 10_000

// PeriodicJob is one configured periodic submission.
type PeriodicJob struct {
	Name       string   `json:"name"`
	Schedule   string   `json:"schedule"`
	Kind       string   `json:"kind"`
	Components string   `json:"components,omitempty"` // "default", "all" or a comma list; default "default"
	Model      string   `json:"model,omitempty"`      // default BATCHSYNTH_MODEL
	Mode       string   `json:"mode,omitempty"`       // default BATCHSYNTH_MODE
	MaxWords   int      `json:"max_words,omitempty"`  // per run; default PeriodicMaxWordsDefault
	FromModels []string `json:"from_models,omitempty"`

	schedule   cron.Schedule
	components []string
}

// ParsePeriodicJobs reads the JSON list of BATCHSYNTH_PERIODIC_JOBS; each error names the job and field.
func ParsePeriodicJobs(s string) ([]PeriodicJob, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var jobs []PeriodicJob
	if err := dec.Decode(&jobs); err != nil {
		return nil, fmt.Errorf("BATCHSYNTH_PERIODIC_JOBS: want a JSON list of {name, schedule, kind, ...}: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range jobs {
		j := &jobs[i]
		where := fmt.Sprintf("BATCHSYNTH_PERIODIC_JOBS[%d]", i)
		if j.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: missing", where))
		} else if seen[j.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", where, j.Name))
		}
		seen[j.Name] = true
		sched, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.schedule: %q: %v", where, j.Schedule, err))
		}
		j.schedule = sched
		if j.Kind != KindNewWords && j.Kind != KindReprocess {
			errs = append(errs, fmt.Errorf("%s.kind: %q: want %s or %s", where, j.Kind, KindNewWords, KindReprocess))
		}
		if j.Components == "" {
			j.Components = "default"
		}
		if j.components, err = synthesis.ParseComponents(j.Components); err != nil {
			errs = append(errs, fmt.Errorf("%s.components: %v", where, err))
		}
		if j.Mode != "" && !slices.Contains(synthesis.Modes(), j.Mode) {
			errs = append(errs, fmt.Errorf("%s.mode: %q: want one of %v", where, j.Mode, synthesis.Modes()))
		}
		if j.MaxWords < 0 {
			errs = append(errs, fmt.Errorf("%s.max_words: must not be negative", where))
		}
		if j.MaxWords == 0 {
			j.MaxWords = PeriodicMaxWordsDefault
		}
	}
	return jobs, errors.Join(errs...)
}

// RunPeriodic submits every job that is due at now. Call it from the active scheduler's loop (each sweep
// tick is often enough). A run is claimed by compare-and-set on last_run_at, so two schedulers that
// overlap during a lease hand-over still submit once. A job seen for the first time starts its clock at
// now: it does not fire at once, and new_words counts words added from now on.
func RunPeriodic(ctx context.Context, d *pipeline.Deps, jobs []PeriodicJob, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	now = now.UTC()
	var errs []error
	for i := range jobs {
		j := &jobs[i]
		if j.schedule == nil {
			continue // rejected by ParsePeriodicJobs
		}
		st, err := d.Store.PeriodicState(ctx, j.Name)
		if errors.Is(err, store.ErrNotFound) {
			if err := d.Store.StartPeriodic(ctx, j.Name, now); err != nil {
				errs = append(errs, fmt.Errorf("periodic job %s: error recording its start: %w", j.Name, err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("periodic job %s: error reading its state: %w", j.Name, err))
			continue
		}
		if now.Before(j.schedule.Next(st.LastRunAt.UTC())) {
			continue
		}
		claimed, err := d.Store.ClaimPeriodicRun(ctx, j.Name, st.LastRunAt, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("periodic job %s: error claiming its run: %w", j.Name, err))
			continue
		}
		if !claimed {
			continue // another scheduler ran it
		}
		jobID, words, runErr := runPeriodicJob(ctx, d, j, st)
		lastError := ""
		if runErr != nil {
			lastError = runErr.Error()
			errs = append(errs, fmt.Errorf("periodic job %s: %w", j.Name, runErr))
		}
		if err := d.Store.RecordPeriodicRun(ctx, j.Name, jobID, words, lastError); err != nil {
			errs = append(errs, fmt.Errorf("periodic job %s: error recording its run: %w", j.Name, err))
		}
		log := d.Log
		if log == nil {
			log = slog.Default()
		}
		log.Info("periodic job ran", "periodic", j.Name, "kind", j.Kind, "job_id", jobID, "words", words, "error", runErr)
	}
	return errors.Join(errs...)
}

func runPeriodicJob(ctx context.Context, d *pipeline.Deps, j *PeriodicJob, st *store.PeriodicState) (string, int, error) {
	switch j.Kind {
	case KindNewWords:
		return runNewWords(ctx, d, j, st)
	case KindReprocess:
		return runReprocess(ctx, d, j)
	}
	return "", 0, fmt.Errorf("unknown kind %q", j.Kind)
}

// runNewWords submits words created after the watermark, oldest first, and moves the watermark to the last
// word taken; words beyond MaxWords wait for the next run.
func runNewWords(ctx context.Context, d *pipeline.Deps, j *PeriodicJob, st *store.PeriodicState) (string, int, error) {
	found, err := d.Store.NewWordsSince(ctx, st.Watermark, st.WatermarkID, j.MaxWords)
	if err != nil {
		return "", 0, err
	}
	if len(found) == 0 {
		return "", 0, nil
	}
	jobID, err := submitWords(ctx, d, j, found, false)
	if err != nil {
		return "", 0, err
	}
	last := found[len(found)-1]
	if err := d.Store.SetPeriodicWatermark(ctx, j.Name, last.CreatedAt, last.ID); err != nil {
		return jobID, len(found), fmt.Errorf("job %s submitted, but its watermark was not saved (the next run repeats these words): %w", jobID, err)
	}
	return jobID, len(found), nil
}

// runReprocess finds succeeded requests made with an older prompt version (or one of FromModels), submits
// their words again with force, and marks those requests superseded so that the next run moves on.
func runReprocess(ctx context.Context, d *pipeline.Deps, j *PeriodicJob) (string, int, error) {
	reqIDs, wordIDs, err := d.Store.RequestsToReprocess(ctx, synthesis.PromptVersion, j.FromModels, j.MaxWords)
	if err != nil {
		return "", 0, err
	}
	if len(wordIDs) == 0 {
		return "", 0, nil
	}
	words, err := d.Store.WordsToReprocess(ctx, wordIDs)
	if err != nil {
		return "", 0, err
	}
	if len(words) == 0 {
		return "", 0, nil
	}
	jobID, err := submitWords(ctx, d, j, words, true)
	if err != nil {
		return "", 0, err
	}
	if err := d.Store.MarkSuperseded(ctx, reqIDs, jobID); err != nil {
		return jobID, len(words), fmt.Errorf("job %s submitted, but its old requests were not marked superseded (the next run repeats them): %w", jobID, err)
	}
	return jobID, len(words), nil
}

func submitWords(ctx context.Context, d *pipeline.Deps, j *PeriodicJob, words []store.Word, force bool) (string, error) {
	in := make([]store.InputWord, 0, len(words))
	seen := map[string]bool{}
	for _, w := range words {
		lang := "en"
		if len(w.Languages) > 0 {
			lang = w.Languages[0]
		}
		key := lang + "\x00" + w.Text
		if w.Text == "" || seen[key] {
			continue
		}
		seen[key] = true
		in = append(in, store.InputWord{Word: w.Text, Language: lang})
	}
	if len(in) == 0 {
		return "", nil
	}
	job, err := d.Submit(ctx, pipeline.Submission{
		Source: "periodic:" + j.Name, Words: in, Components: j.components, Mode: j.Mode, Model: j.Model,
		Force: force, Priority: pipeline.PriorityNormal,
	})
	if job != nil {
		// Stored means it will run (the sweep enqueues a job whose enqueue failed).
		return job.ID, nil
	}
	return "", err
}
