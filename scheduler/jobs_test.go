package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

func TestParsePeriodicJobs(t *testing.T) {
	jobs, err := ParsePeriodicJobs(`[{"name": "nightly", "schedule": "0 3 * * *", "kind": "new_words"},
		{"name": "weekly", "schedule": "@every 168h", "kind": "reprocess", "components": "synonyms,examples", "from_models": ["gpt-4o-mini"], "max_words": 50}]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].MaxWords != PeriodicMaxWordsDefault || jobs[1].MaxWords != 50 || strings.Join(jobs[1].components, ",") != "synonyms,examples" {
		t.Fatalf("parsed %+v", jobs)
	}
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if next := jobs[0].schedule.Next(at); !next.Equal(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("nightly after noon runs at %v", next)
	}
	_, err = ParsePeriodicJobs(`[{"name": "a", "schedule": "every day", "kind": "new_words"}, {"name": "a", "schedule": "@daily", "kind": "sometimes", "components": "colour"}, {"schedule": "@daily", "kind": "new_words", "extra": 1}]`)
	if err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown field: %v", err)
	}
	_, err = ParsePeriodicJobs(`[{"name": "a", "schedule": "every day", "kind": "new_words"}, {"name": "a", "schedule": "@daily", "kind": "sometimes", "components": "colour", "mode": "fast"}, {"schedule": "@daily", "kind": "new_words"}]`)
	for _, want := range []string{"[0].schedule", "[1].name", "[1].kind", "[1].components", "[1].mode", "[2].name"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no error naming %s in %v", want, err)
		}
	}
	if jobs, err := ParsePeriodicJobs(""); err != nil || jobs != nil {
		t.Errorf("unset: %v %v", jobs, err)
	}
}

func periodicDeps(t *testing.T) *pipeline.Deps {
	t.Helper()
	ctx := context.Background()
	redisURL := testenv.Redis(t)
	cl, db := testenv.Mongo(t)
	st := store.New(cl, db)
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClient(opt)
	t.Cleanup(func() { _ = q.Close() })
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline.Deps{Store: st, Queue: q, Config: cfg, Owner: "test"}
}

func addWord(t *testing.T, d *pipeline.Deps, text string, at time.Time) bson.ObjectID {
	t.Helper()
	id := bson.NewObjectID()
	if _, err := d.Store.Collection(store.CollWords).InsertOne(context.Background(), store.Word{ID: id, Text: text, Normalized: text, Lemma: text,
		Languages: []string{"en"}, CorpusIDs: []bson.ObjectID{}, CreatedAt: at, UpdatedAt: at, Version: 1}); err != nil {
		t.Fatal(err)
	}
	return id
}

func jobWords(t *testing.T, d *pipeline.Deps, jobID string) []string {
	t.Helper()
	var in store.JobInput
	if err := d.Store.Collection(store.CollInputs).FindOne(context.Background(), bson.M{"job_id": jobID}).Decode(&in); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range in.Words {
		out = append(out, w.Word)
	}
	return out
}

func loadPeriodicState(t *testing.T, d *pipeline.Deps, name string) store.PeriodicState {
	t.Helper()
	st, err := d.Store.PeriodicState(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return *st
}

func TestRunPeriodicNewWords(t *testing.T) {
	d := periodicDeps(t)
	ctx := context.Background()
	jobs, err := ParsePeriodicJobs(`[{"name": "nightly", "schedule": "0 3 * * *", "kind": "new_words", "components": "synonyms", "max_words": 2}]`)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	addWord(t, d, "old", day.Add(-time.Hour))
	// First sight: the clock starts, nothing is submitted.
	if err := RunPeriodic(ctx, d, jobs, day); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Store.Collection(store.CollJobs).CountDocuments(ctx, bson.M{}); n != 0 {
		t.Fatalf("%d jobs after the first sight", n)
	}
	addWord(t, d, "alpha", day.Add(time.Hour))
	addWord(t, d, "beta", day.Add(2*time.Hour))
	addWord(t, d, "gamma", day.Add(2*time.Hour))
	// Not due before 03:00 the next day.
	if err := RunPeriodic(ctx, d, jobs, day.Add(14*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Store.Collection(store.CollJobs).CountDocuments(ctx, bson.M{}); n != 0 {
		t.Fatalf("%d jobs before the schedule", n)
	}
	night := day.Add(15*time.Hour + time.Minute)
	if err := RunPeriodic(ctx, d, jobs, night); err != nil {
		t.Fatal(err)
	}
	st := loadPeriodicState(t, d, "nightly")
	if st.LastJobID == "" || st.LastWords != 2 || st.Runs != 1 {
		t.Fatalf("after the first run: %+v", st)
	}
	if got := strings.Join(jobWords(t, d, st.LastJobID), ","); got != "alpha,beta" {
		t.Errorf("first run took %s, want alpha,beta (oldest first, max_words 2)", got)
	}
	job, err := d.Store.Job(ctx, st.LastJobID)
	if err != nil || job.Source != "periodic:nightly" || job.Force {
		t.Errorf("job %+v %v", job, err)
	}
	// Run again at the same moment (a second scheduler during a hand-over): nothing new.
	if err := RunPeriodic(ctx, d, jobs, night); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Store.Collection(store.CollJobs).CountDocuments(ctx, bson.M{}); n != 1 {
		t.Errorf("%d jobs after a repeated tick, want 1", n)
	}
	// The next night takes the word left over at the same created_at as the watermark.
	if err := RunPeriodic(ctx, d, jobs, night.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	st = loadPeriodicState(t, d, "nightly")
	if got := strings.Join(jobWords(t, d, st.LastJobID), ","); got != "gamma" || st.Runs != 2 {
		t.Errorf("second run took %s (%+v), want gamma", got, st)
	}
}

func TestRunPeriodicReprocess(t *testing.T) {
	d := periodicDeps(t)
	ctx := context.Background()
	jobs, err := ParsePeriodicJobs(`[{"name": "reprocess", "schedule": "@every 1h", "kind": "reprocess", "from_models": ["gpt-4o-mini"], "model": "gpt-5-mini", "components": "synonyms"}]`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	w1 := addWord(t, d, "alpha", now)
	w2 := addWord(t, d, "beta", now)
	w3 := addWord(t, d, "gamma", now)
	req := func(id string, word bson.ObjectID, text, version, model string, state store.RequestState) any {
		return store.Request{ID: id, JobIDs: []string{"job_old"}, Kind: store.TargetDefinition, WordID: word, Word: text,
			DefinitionIDs: []bson.ObjectID{}, Components: []string{"synonyms"}, PromptVersion: version, Model: model, State: state,
			CreatedAt: now, UpdatedAt: now}
	}
	if _, err := d.Store.Collection(store.CollRequests).InsertMany(ctx, []any{
		req("r1", w1, "alpha", "v0", "gpt-5-mini", store.StateSucceeded),                    // older prompt
		req("r2", w2, "beta", synthesis.PromptVersion, "gpt-4o-mini", store.StateSucceeded), // older model
		req("r3", w3, "gamma", synthesis.PromptVersion, "gpt-5-mini", store.StateSucceeded), // current
		req("r4", w3, "gamma", "v0", "gpt-5-mini", store.StateDead),                         // never applied
	}); err != nil {
		t.Fatal(err)
	}
	if err := RunPeriodic(ctx, d, jobs, now); err != nil { // first sight
		t.Fatal(err)
	}
	if err := RunPeriodic(ctx, d, jobs, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st := loadPeriodicState(t, d, "reprocess")
	if st.LastJobID == "" || st.LastWords != 2 {
		t.Fatalf("state %+v", st)
	}
	got := jobWords(t, d, st.LastJobID)
	if strings.Join(got, ",") != "alpha,beta" && strings.Join(got, ",") != "beta,alpha" {
		t.Errorf("reprocessed %v, want alpha and beta", got)
	}
	job, err := d.Store.Job(ctx, st.LastJobID)
	if err != nil || !job.Force || job.Model != "gpt-5-mini" {
		t.Errorf("job %+v %v: want forced, on gpt-5-mini", job, err)
	}
	n, _ := d.Store.CountSupersededBy(ctx, st.LastJobID)
	if n != 2 {
		t.Errorf("%d requests superseded, want 2", n)
	}
	// The next run finds nothing left to reprocess.
	if err := RunPeriodic(ctx, d, jobs, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Store.Collection(store.CollJobs).CountDocuments(ctx, bson.M{}); c != 1 {
		t.Errorf("%d jobs, want 1", c)
	}
}
