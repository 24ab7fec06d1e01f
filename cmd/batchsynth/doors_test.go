package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
	"github.com/floridify/batchsynth/internal/web"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// An outcome kind: what a rule answered, as each door must tell it.
const (
	kindOK             = "ok"
	kindNotFound       = "not_found"
	kindJobFinished    = "job_finished"
	kindNotCancellable = "not_cancellable"
	kindInvalid        = "invalid"
)

// doorMap is how the HTTP API and the CLI translate each kind.
var doorMap = map[string]struct {
	status int
	code   string // the API's error code
	exit   int
}{
	kindOK:             {http.StatusOK, "", 0},
	kindNotFound:       {http.StatusNotFound, "not_found", exitNotFound},
	kindJobFinished:    {http.StatusConflict, "job_finished", exitConflict},
	kindNotCancellable: {http.StatusConflict, "batch_not_cancellable", exitConflict},
	kindInvalid:        {http.StatusBadRequest, "invalid_field", exitFailure},
}

func kindOf(err error) string {
	switch {
	case err == nil:
		return kindOK
	case errors.Is(err, pipeline.ErrNotFound):
		return kindNotFound
	case errors.Is(err, pipeline.ErrJobFinished):
		return kindJobFinished
	case errors.Is(err, pipeline.ErrNotCancellable):
		return kindNotCancellable
	case errors.Is(err, pipeline.ErrInvalidInput):
		return kindInvalid
	}
	return "error: " + err.Error()
}

// doorsEnv is one database, Redis and emulator that the three doors share: the Go rules (fleet.Deps), the
// HTTP API (internal/web in an httptest server) and the CLI (its cobra commands, run in-process against the
// same services through the environment, as the binary reads them).
type doorsEnv struct {
	f   *fleet.Fleet
	url string
	dir string
}

func newDoorsEnv(t *testing.T) *doorsEnv {
	t.Helper()
	redisURL, mongoURI := testenv.Redis(t), testenv.MongoURI(t)
	_, db := testenv.Mongo(t)
	_, base := testenv.Emulator(t, emulator.Config{})
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisURL, cfg.MongoURI, cfg.Database, cfg.OpenAIKey, cfg.OpenAIBaseURL = redisURL, mongoURI, db, "sk-test", base
	for k, v := range map[string]string{"REDIS_URL": redisURL, "MONGODB_URI": mongoURI, "MONGODB_DATABASE": db,
		"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": base, "BATCHSYNTH_LOG_LEVEL": "error"} {
		t.Setenv(k, v)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := fleet.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := &web.Server{Deps: f.Deps, Redis: f.Redis, Log: log}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
		f.Close()
	})
	return &doorsEnv{f: f, url: ts.URL, dir: t.TempDir()}
}

// result is what one door reported: the kind, the count of requests moved (-1 when the door tells none),
// and the message shown to the user.
type result struct {
	kind string
	n    int
	msg  string
}

// The actions of the table.
const (
	actCancelJob   = "cancel job"
	actCancelBatch = "cancel batch"
	actRetry       = "retry"
	actSubmitModel = "submit with an unknown model"
	actSubmitPrio  = "submit with an unknown priority"
)

func badSubmission(act string) pipeline.Submission {
	s := pipeline.Submission{Source: "doors", Words: []store.InputWord{{Word: "apple"}}, Components: []string{"synonyms"}}
	if act == actSubmitModel {
		s.Model = "gpt-9"
	} else {
		s.Priority = "asap"
	}
	return s
}

func (e *doorsEnv) goDoor(t *testing.T, act, id string) result {
	ctx := context.Background()
	d := e.f.Deps
	var (
		n   = -1
		err error
	)
	switch act {
	case actCancelJob:
		n, err = d.CancelJob(ctx, id)
	case actCancelBatch:
		err = d.CancelBatch(ctx, id)
	case actRetry:
		n, err = d.RetryJob(ctx, id)
	case actSubmitModel, actSubmitPrio:
		_, err = d.Submit(ctx, badSubmission(act))
	}
	r := result{kind: kindOf(err), n: n}
	if err != nil {
		r.msg = err.Error()
	}
	return r
}

func (e *doorsEnv) httpDoor(t *testing.T, act, id string) result {
	path, body := "", ""
	switch act {
	case actCancelJob:
		path = "/v1/jobs/" + id + "/cancel"
	case actCancelBatch:
		path = "/v1/batches/" + id + "/cancel"
	case actRetry:
		path = "/v1/jobs/" + id + "/retry"
	case actSubmitModel:
		path, body = "/v1/jobs", `{"words": ["apple"], "components": ["synonyms"], "model": "gpt-9"}`
	case actSubmitPrio:
		path, body = "/v1/jobs", `{"words": ["apple"], "components": ["synonyms"], "priority": "asap"}`
	}
	res, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans struct {
		Cancelled *int `json:"cancelled_requests"`
		Requeued  *int `json:"requeued_requests"`
		Error     struct {
			Code    string `json:"code"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("%s %s: %d %s", act, id, res.StatusCode, raw)
	}
	r := result{n: -1, msg: ans.Error.Message}
	switch {
	case ans.Cancelled != nil:
		r.n = *ans.Cancelled
	case ans.Requeued != nil:
		r.n = *ans.Requeued
	}
	for kind, m := range doorMap {
		ok := res.StatusCode == m.status && ans.Error.Code == m.code
		if kind == kindOK {
			ok = res.StatusCode == http.StatusOK || res.StatusCode == http.StatusAccepted
		}
		if ok {
			r.kind = kind
		}
	}
	if r.kind == "" {
		r.kind = fmt.Sprintf("HTTP %d %s", res.StatusCode, raw)
	}
	return r
}

var cliCount = regexp.MustCompile(`\((\d+) pending requests cancelled\)|: (\d+) request\(s\) back to pending`)

func (e *doorsEnv) cliDoor(t *testing.T, act, id string) result {
	var args []string
	switch act {
	case actCancelJob, actCancelBatch:
		args = []string{"cancel", id}
	case actRetry:
		args = []string{"retry", id}
	case actSubmitModel, actSubmitPrio:
		words := filepath.Join(e.dir, "words.txt")
		if err := os.WriteFile(words, []byte("apple\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args = []string{"process", "--components", "synonyms", "--words", words}
		if act == actSubmitModel {
			args = append(args, "--model", "gpt-9")
		} else {
			// The CLI has no priority flag; the rule's check of it is the Go door's and the API's.
			return result{kind: kindInvalid, n: -1, msg: "skipped"}
		}
	}
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	code, msg := 0, ""
	if err != nil {
		code, msg = exitFor(err)
	}
	r := result{n: -1, msg: msg}
	if m := cliCount.FindStringSubmatch(out.String()); m != nil {
		r.n, _ = strconv.Atoi(m[1] + m[2])
	}
	switch {
	case code == 0:
		r.kind = kindOK
	case code == exitNotFound:
		r.kind = kindNotFound
	case code == exitConflict && strings.Contains(msg, pipeline.ErrJobFinished.Error()):
		r.kind = kindJobFinished
	case code == exitConflict && strings.Contains(msg, pipeline.ErrNotCancellable.Error()):
		r.kind = kindNotCancellable
	case code == exitFailure && strings.Contains(msg, "model"):
		r.kind = kindInvalid
	default:
		r.kind = fmt.Sprintf("exit %d: %s", code, msg)
	}
	return r
}

// fixture is the state one case starts from, written under a prefix of its own for each door.
type fixture struct {
	job   store.JobStatus // "" for no job
	batch store.BatchState
	// requests of the job: state, and whether another job follows it too
	requests []store.RequestState
}

func (e *doorsEnv) seed(t *testing.T, p string, fx fixture) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if fx.job != "" {
		job := store.Job{ID: p + "job", Source: "doors", Components: []string{"synonyms"}, Mode: "packed", Model: "gpt-4o-mini",
			Status: fx.job, Chunks: 1, Expanded: []int{0}, WordsMissing: []string{}, InputErrors: []store.InputError{}, CreatedAt: now, UpdatedAt: now}
		if fx.job.Finished() {
			job.FinishedAt = &now
		}
		if _, err := e.f.Store.Collection(store.CollJobs).InsertOne(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	if fx.batch != "" {
		b := store.Batch{ID: p + "batch", Model: "gpt-4o-mini", State: fx.batch, StatusHistory: []store.StatusChange{}, CreatedAt: now, UpdatedAt: now}
		if fx.batch == store.BatchSubmitted || fx.batch == store.BatchApplied {
			b.OpenAIBatchID, b.OpenAIStatus = "batch_"+p+"unknown", "in_progress"
		}
		if _, err := e.f.Store.Collection(store.CollBatches).InsertOne(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range fx.requests {
		q := store.Request{ID: fmt.Sprintf("%sreq%d", p, i), JobIDs: []string{p + "job"}, Kind: store.TargetWord, Word: "apple",
			DefinitionIDs: []store.ObjectID{}, Components: []string{"synonyms"}, Mode: "packed", Model: "gpt-4o-mini", State: st,
			CreatedAt: now, UpdatedAt: now}
		switch st {
		case store.StateDead:
			q.Attempts, q.LastError = 3, "refused"
		case store.StateCancelled:
			q.Attempts, q.LastError = 1, "job cancelled"
		case store.StateClaimed, store.StateSubmitted:
			q.Attempts, q.BatchID = 1, p+"batch"
		case store.StateSucceeded:
			q.Attempts, q.Applied = 1, true
		}
		if _, err := e.f.Store.Collection(store.CollRequests).InsertOne(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot is what a case leaves in MongoDB, with the door's prefix taken out of every id.
type snapshot struct {
	Job      string
	Finished bool
	Batch    string
	Cancel   bool
	Requests map[string]string // id -> state/attempts/batch/error
	Jobs     int64             // jobs stored by a submission (a refused one stores none)
}

func (e *doorsEnv) snapshot(t *testing.T, p string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{Requests: map[string]string{}}
	if j, err := e.f.Store.Job(ctx, p+"job"); err == nil {
		s.Job, s.Finished = string(j.Status), j.FinishedAt != nil
	}
	if b, err := e.f.Store.Batch(ctx, p+"batch"); err == nil {
		s.Batch, s.Cancel = string(b.State), b.CancelAsked
	}
	cur, err := e.f.Store.Collection(store.CollRequests).Find(ctx, bson.M{"job_ids": p + "job"})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []store.Request
	if err := cur.All(ctx, &reqs); err != nil {
		t.Fatal(err)
	}
	for _, q := range reqs {
		s.Requests[strings.TrimPrefix(q.ID, p)] = fmt.Sprintf("%s/%d/%s/%s", q.State, q.Attempts, strings.TrimPrefix(q.BatchID, p), q.LastError)
	}
	if s.Jobs, err = e.f.Store.Collection(store.CollJobs).CountDocuments(ctx, bson.M{"_id": bson.M{"$regex": "^job_"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDoors runs each action, on the same states, through the Go rules, the HTTP API and the CLI: the same
// kind of outcome (mapped to the same HTTP status and exit code everywhere) and the same documents after.
func TestDoors(t *testing.T) {
	e := newDoorsEnv(t)
	running := fixture{job: store.JobRunning, batch: store.BatchUploading,
		requests: []store.RequestState{store.StatePending, store.StateDead, store.StateSucceeded, store.StateClaimed}}
	done := fixture{job: store.JobDone, requests: []store.RequestState{store.StateSucceeded, store.StateDead, store.StateCancelled}}
	cases := []struct {
		name   string
		act    string
		fx     fixture
		target string // "job", "batch" or "missing"
		kind   string
		n      int
		want   func(t *testing.T, s snapshot)
	}{
		{"cancel running job", actCancelJob, running, "job", kindOK, 1, func(t *testing.T, s snapshot) {
			// Its pending request is cancelled; the batch building its claimed one is marked for cancellation.
			if s.Job != "cancelled" || !s.Finished || s.Requests["req0"] != "cancelled/0//job cancelled" || !s.Cancel {
				t.Errorf("after cancel: %+v", s)
			}
		}},
		{"cancel done job", actCancelJob, done, "job", kindJobFinished, -1, func(t *testing.T, s snapshot) {
			if s.Job != "done" {
				t.Errorf("a done job was relabelled %s", s.Job)
			}
		}},
		{"cancel finished job the sweep has not marked", actCancelJob, fixture{job: store.JobRunning,
			requests: []store.RequestState{store.StateSucceeded, store.StateDead}}, "job", kindJobFinished, -1, func(t *testing.T, s snapshot) {
			if s.Job != "running" {
				t.Errorf("a finished job was relabelled %s", s.Job)
			}
		}},
		{"cancel cancelled job", actCancelJob, fixture{job: store.JobCancelled, requests: []store.RequestState{store.StateCancelled}}, "job", kindJobFinished, -1, nil},
		{"cancel unknown job", actCancelJob, fixture{}, "missing", kindNotFound, -1, nil},
		{"cancel submitted batch", actCancelBatch, fixture{batch: store.BatchSubmitted}, "batch", kindOK, -1, func(t *testing.T, s snapshot) {
			if s.Batch != "submitted" || !s.Cancel {
				t.Errorf("after cancel: %+v", s)
			}
		}},
		{"cancel building batch", actCancelBatch, fixture{batch: store.BatchUploading}, "batch", kindOK, -1, func(t *testing.T, s snapshot) {
			if s.Batch != "uploading" || !s.Cancel {
				t.Errorf("a batch being built is marked, not moved: %+v", s)
			}
		}},
		{"cancel applied batch", actCancelBatch, fixture{batch: store.BatchApplied}, "batch", kindNotCancellable, -1, func(t *testing.T, s snapshot) {
			if s.Cancel {
				t.Errorf("an applied batch was marked: %+v", s)
			}
		}},
		{"cancel unknown batch", actCancelBatch, fixture{}, "missing", kindNotFound, -1, nil},
		{"retry with dead requests", actRetry, done, "job", kindOK, 2, func(t *testing.T, s snapshot) {
			if s.Job != "running" || s.Finished || s.Requests["req1"] != "pending/0//refused" || s.Requests["req2"] != "pending/0//job cancelled" {
				t.Errorf("after retry: %+v", s)
			}
		}},
		{"retry without dead requests", actRetry, fixture{job: store.JobDone, requests: []store.RequestState{store.StateSucceeded}}, "job", kindOK, 0, func(t *testing.T, s snapshot) {
			if s.Job != "done" {
				t.Errorf("nothing to retry, but the job is %s", s.Job)
			}
		}},
		{"retry unknown job", actRetry, fixture{}, "missing", kindNotFound, -1, nil},
		{"submit unknown model", actSubmitModel, fixture{}, "", kindInvalid, -1, func(t *testing.T, s snapshot) {
			if s.Jobs != 0 {
				t.Errorf("a refused submission stored %d job(s)", s.Jobs)
			}
		}},
		{"submit unknown priority", actSubmitPrio, fixture{}, "", kindInvalid, -1, func(t *testing.T, s snapshot) {
			if s.Jobs != 0 {
				t.Errorf("a refused submission stored %d job(s)", s.Jobs)
			}
		}},
	}
	doors := []struct {
		name string
		run  func(t *testing.T, act, id string) result
	}{{"go", e.goDoor}, {"http", e.httpDoor}, {"cli", e.cliDoor}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var first *snapshot
			for _, d := range doors {
				p := fmt.Sprintf("%s%d-", d.name, i)
				e.seed(t, p, c.fx)
				r := d.run(t, c.act, p+c.target)
				if r.kind != c.kind {
					t.Errorf("%s door: %s, want %s (HTTP %d %s, exit %d)", d.name, r.kind, c.kind, doorMap[c.kind].status, doorMap[c.kind].code, doorMap[c.kind].exit)
				}
				if r.n != -1 && c.n != -1 && r.n != c.n {
					t.Errorf("%s door: %d requests moved, want %d", d.name, r.n, c.n)
				}
				if c.kind != kindOK && r.msg == "" {
					t.Errorf("%s door: no message for %s", d.name, r.kind)
				}
				s := e.snapshot(t, p)
				if first == nil {
					first = &s
					if c.want != nil {
						c.want(t, s)
					}
				} else if !reflect.DeepEqual(s, *first) {
					t.Errorf("%s door left\n%+v\nthe go door left\n%+v", d.name, s, *first)
				}
				t.Logf("%s door: %s %q", d.name, r.kind, r.msg)
			}
		})
	}
}
