package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
// MongoDB (synthesis_periodic), so a restarted or replaced scheduler neither skips nor repeats a run.

// Periodic job kinds.
const (
	// KindNewWords submits the words added to Floridify's words collection since the last run.
	KindNewWords = "new_words"
	// KindReprocess resubmits (forced) the words whose enrichments came from an older prompt version, or
	// from one of FromModels.
	KindReprocess = "reprocess"
)

// CollPeriodic holds one document per periodic job: its last run and, for new_words, its watermark.
const CollPeriodic = "synthesis_periodic"

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

// PeriodicJobsFromEnv reads BATCHSYNTH_PERIODIC_JOBS through getenv (os.Getenv when nil).
func PeriodicJobsFromEnv(getenv func(string) string) ([]PeriodicJob, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	return ParsePeriodicJobs(getenv("BATCHSYNTH_PERIODIC_JOBS"))
}

type periodicState struct {
	ID          string        `bson:"_id"`
	LastRunAt   time.Time     `bson:"last_run_at"`
	Watermark   time.Time     `bson:"watermark"`
	WatermarkID bson.ObjectID `bson:"watermark_id"`
	LastJobID   string        `bson:"last_job_id,omitempty"`
	LastWords   int           `bson:"last_words"`
	LastError   string        `bson:"last_error,omitempty"`
	Runs        int           `bson:"runs"`
}

var wordsIndexOnce sync.Once

// RunPeriodic submits every job that is due at now. Call it from the active scheduler's loop (each sweep
// tick is often enough). A run is claimed by compare-and-set on last_run_at, so two schedulers that
// overlap during a lease hand-over still submit once. A job seen for the first time starts its clock at
// now: it does not fire at once, and new_words counts words added from now on.
func RunPeriodic(ctx context.Context, d *pipeline.Deps, jobs []PeriodicJob, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	now = now.UTC()
	coll := d.Store.DB.Collection(CollPeriodic)
	var errs []error
	for i := range jobs {
		j := &jobs[i]
		if j.schedule == nil {
			continue // rejected by ParsePeriodicJobs
		}
		var st periodicState
		err := coll.FindOne(ctx, bson.M{"_id": j.Name}).Decode(&st)
		if errors.Is(err, mongo.ErrNoDocuments) {
			_, err := coll.InsertOne(ctx, periodicState{ID: j.Name, LastRunAt: now, Watermark: now})
			if err != nil && !mongo.IsDuplicateKeyError(err) {
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
		res, err := coll.UpdateOne(ctx, bson.M{"_id": j.Name, "last_run_at": st.LastRunAt},
			bson.M{"$set": bson.M{"last_run_at": now}, "$inc": bson.M{"runs": 1}})
		if err != nil {
			errs = append(errs, fmt.Errorf("periodic job %s: error claiming its run: %w", j.Name, err))
			continue
		}
		if res.ModifiedCount == 0 {
			continue // another scheduler ran it
		}
		jobID, words, runErr := runPeriodicJob(ctx, d, j, &st)
		set := bson.M{"last_words": words, "last_error": ""}
		if jobID != "" {
			set["last_job_id"] = jobID
		}
		if runErr != nil {
			set["last_error"] = runErr.Error()
			errs = append(errs, fmt.Errorf("periodic job %s: %w", j.Name, runErr))
		}
		if _, err := coll.UpdateOne(ctx, bson.M{"_id": j.Name}, bson.M{"$set": set}); err != nil {
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

func runPeriodicJob(ctx context.Context, d *pipeline.Deps, j *PeriodicJob, st *periodicState) (string, int, error) {
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
func runNewWords(ctx context.Context, d *pipeline.Deps, j *PeriodicJob, st *periodicState) (string, int, error) {
	wordsIndexOnce.Do(func() {
		// Floridify's own indexes do not cover created_at; without this the query scans every word.
		_, _ = d.Store.Words.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}})
	})
	filter := bson.M{"$or": bson.A{
		bson.M{"created_at": bson.M{"$gt": st.Watermark}},
		bson.M{"created_at": st.Watermark, "_id": bson.M{"$gt": st.WatermarkID}},
	}}
	cur, err := d.Store.Words.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(j.MaxWords)).SetProjection(bson.M{"text": 1, "languages": 1, "created_at": 1}))
	if err != nil {
		return "", 0, fmt.Errorf("error finding new words: %w", err)
	}
	var found []store.Word
	if err := cur.All(ctx, &found); err != nil {
		return "", 0, fmt.Errorf("error finding new words: %w", err)
	}
	if len(found) == 0 {
		return "", 0, nil
	}
	jobID, err := submitWords(ctx, d, j, found, false)
	if err != nil {
		return "", 0, err
	}
	last := found[len(found)-1]
	if _, err := d.Store.DB.Collection(CollPeriodic).UpdateOne(ctx, bson.M{"_id": j.Name},
		bson.M{"$set": bson.M{"watermark": last.CreatedAt, "watermark_id": last.ID}}); err != nil {
		return jobID, len(found), fmt.Errorf("job %s submitted, but its watermark was not saved (the next run repeats these words): %w", jobID, err)
	}
	return jobID, len(found), nil
}

// runReprocess finds succeeded requests made with an older prompt version (or one of FromModels), submits
// their words again with force, and marks those requests superseded so that the next run moves on.
func runReprocess(ctx context.Context, d *pipeline.Deps, j *PeriodicJob) (string, int, error) {
	stale := bson.A{bson.M{"prompt_version": bson.M{"$ne": synthesis.PromptVersion}}}
	if len(j.FromModels) > 0 {
		stale = append(stale, bson.M{"model": bson.M{"$in": j.FromModels}})
	}
	cur, err := d.Store.Requests.Find(ctx, bson.M{
		"state": store.StateSucceeded, "superseded_by": bson.M{"$exists": false}, "$or": stale,
	}, options.Find().SetProjection(bson.M{"_id": 1, "word_id": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(5000))
	if err != nil {
		return "", 0, fmt.Errorf("error finding requests to reprocess: %w", err)
	}
	defer cur.Close(ctx)
	var reqIDs []string
	var wordIDs []bson.ObjectID
	seen := map[bson.ObjectID]bool{}
	for cur.Next(ctx) {
		var r struct {
			ID     string        `bson:"_id"`
			WordID bson.ObjectID `bson:"word_id"`
		}
		if err := cur.Decode(&r); err != nil {
			return "", 0, fmt.Errorf("error reading requests to reprocess: %w", err)
		}
		if !seen[r.WordID] {
			if len(wordIDs) == j.MaxWords {
				continue // this word waits for the next run, with all its requests
			}
			seen[r.WordID] = true
			wordIDs = append(wordIDs, r.WordID)
		}
		reqIDs = append(reqIDs, r.ID)
	}
	if err := cur.Err(); err != nil {
		return "", 0, fmt.Errorf("error reading requests to reprocess: %w", err)
	}
	if len(wordIDs) == 0 {
		return "", 0, nil
	}
	wc, err := d.Store.Words.Find(ctx, bson.M{"_id": bson.M{"$in": wordIDs}}, options.Find().SetProjection(bson.M{"text": 1, "languages": 1}))
	if err != nil {
		return "", 0, fmt.Errorf("error loading words to reprocess: %w", err)
	}
	var words []store.Word
	if err := wc.All(ctx, &words); err != nil {
		return "", 0, fmt.Errorf("error loading words to reprocess: %w", err)
	}
	if len(words) == 0 {
		return "", 0, nil
	}
	jobID, err := submitWords(ctx, d, j, words, true)
	if err != nil {
		return "", 0, err
	}
	// In slices: an $in of a few hundred thousand ids would pass MongoDB's 16 MB command limit.
	for start := 0; start < len(reqIDs); start += 10_000 {
		ids := reqIDs[start:min(start+10_000, len(reqIDs))]
		if _, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"_id": bson.M{"$in": ids}},
			bson.M{"$set": bson.M{"superseded_by": jobID}}); err != nil {
			return jobID, len(words), fmt.Errorf("job %s submitted, but its old requests were not marked superseded (the next run repeats them): %w", jobID, err)
		}
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
