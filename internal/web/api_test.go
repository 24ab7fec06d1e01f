package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

type errorBody struct {
	Error apiError `json:"error"`
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	get := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := get("/healthz", nil); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz without a token: %d, want 200", res.StatusCode)
	}
	for _, p := range []string{"/v1/jobs", "/metrics", "/monitoring/", "/v1/stats", "/ui/live", "/openapi.yaml", "/no/such/route"} {
		for name, hdr := range map[string]map[string]string{
			"none":   nil,
			"wrong":  {"Authorization": "Bearer " + testToken + "x"},
			"prefix": {"Authorization": "Bearer " + testToken[:len(testToken)-1]},
			"basic":  {"Authorization": "Basic " + testToken},
		} {
			res := get(p, hdr)
			var eb errorBody
			decode(t, res, &eb)
			if res.StatusCode != http.StatusUnauthorized || eb.Error.Code != "unauthorized" {
				t.Errorf("%s with %s token: %d %+v, want 401 unauthorized", p, name, res.StatusCode, eb.Error)
			}
		}
	}
	if res := get("/v1/jobs", map[string]string{"Authorization": "bearer " + testToken}); res.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d, want 200", res.StatusCode)
	}
	// A browser is sent to the sign-in page, signs in, and gets a session that works for pages and GETs.
	res := get("/", map[string]string{"Accept": "text/html"})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("/ from a browser: %d to %q, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
	}
	form := func(token string) *http.Response {
		res, err := noRedirect.PostForm(e.URL+"/login", url.Values{"token": {token}, "next": {"//evil.example/"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := form("nope"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong token: %d, want 401", res.StatusCode)
	}
	res = form(testToken)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d to %q, want 303 to / (never to another site)", res.StatusCode, res.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || strings.Contains(session.Value, testToken) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not carrying the token", session)
	}
	cookie := session.Name + "=" + session.Value
	if res := get("/", map[string]string{"Cookie": cookie}); res.StatusCode != http.StatusOK {
		t.Errorf("/ with a session: %d", res.StatusCode)
	}
	if res := get("/v1/jobs", map[string]string{"Cookie": cookie}); res.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/jobs with a session: %d", res.StatusCode)
	}
	// A cross-site POST riding the cookie is refused; the dashboard's own POST goes through.
	post := func(hdr map[string]string) int {
		req, _ := http.NewRequest("POST", e.URL+"/v1/jobs/job_nope/cancel", nil)
		req.Header.Set("Cookie", cookie)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-site POST with the session: %d, want 403", code)
	}
	if code := post(map[string]string{csrfHeader: "1"}); code != http.StatusNotFound {
		t.Errorf("dashboard POST with the session: %d, want 404 (unknown job, past auth)", code)
	}
	if res := get("/v1/jobs", map[string]string{"Cookie": session.Name + "=" + "9999999999.deadbeef"}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session: %d, want 401", res.StatusCode)
	}
}

func TestSubmitValidation(t *testing.T) {
	e := newEnv(t, envOptions{Server: func(s *Server) { s.MaxBodyBytes = 4096 }})
	cases := []struct {
		name, ct, body string
		code           int
		errCode, field string
	}{
		{"malformed", "application/json", `{"words": [`, 400, "malformed_json", ""},
		{"empty body", "application/json", ``, 400, "malformed_json", ""},
		{"unknown field", "application/json", `{"words": ["a"], "colour": "red"}`, 400, "unknown_field", "colour"},
		{"words not a list", "application/json", `{"words": "person"}`, 400, "invalid_field", "words"},
		{"no words", "application/json", `{"words": []}`, 400, "invalid_field", "words"},
		{"unknown component", "application/json", `{"words": ["a"], "components": ["synonyms", "colour"]}`, 400, "invalid_field", "components"},
		{"comma in a list entry", "application/json", `{"words": ["a"], "components": ["synonyms,examples"]}`, 400, "invalid_field", "components[0]"},
		{"unknown model", "application/json", `{"words": ["a"], "model": "gpt-9"}`, 400, "invalid_field", "model"},
		{"unknown mode", "application/json", `{"words": ["a"], "mode": "fast"}`, 400, "invalid_field", "mode"},
		{"unknown priority", "application/json", `{"words": ["a"], "priority": "asap"}`, 400, "invalid_field", "priority"},
		{"force not a bool", "application/json", `{"words": ["a"], "force": "yes"}`, 400, "invalid_field", "force"},
		{"no valid word", "application/json", `{"words": ["", {"word": "x", "definitions": [{"part_of_speech": "noun"}]}]}`, 400, "no_valid_word", "words[0]"},
		{"too large", "application/json", `{"words": ["` + strings.Repeat("a", 5000) + `"]}`, 413, "body_too_large", "body"},
		{"media type", "application/xml", `<words/>`, 415, "unsupported_media_type", "Content-Type"},
		{"text bad option", "text/plain", "person\n", 400, "invalid_field", "components"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/v1/jobs"
			if c.name == "text bad option" {
				path += "?components=colour"
			}
			res := e.do(t, "POST", path, c.ct, strings.NewReader(c.body))
			var eb errorBody
			decode(t, res, &eb)
			if res.StatusCode != c.code || eb.Error.Code != c.errCode || eb.Error.Field != c.field || eb.Error.Message == "" {
				t.Errorf("got %d %+v, want %d code %q field %q", res.StatusCode, eb.Error, c.code, c.errCode, c.field)
			}
		})
	}
	// A partly valid submission goes on; each rejected word is named by its field.
	body := `{"words": ["person", "", "person", {"word": "make", "definitions": [{"part_of_speech": "verb"}]},
		{"word": "go", "language": "xx"}, {"word": "run", "definitions": [{"part_of_speech": "verb", "text": "move fast"}]}, 7],
		"components": "synonyms,examples", "priority": "normal", "source": "floridify"}`
	res := e.do(t, "POST", "/v1/jobs", "application/json", strings.NewReader(body))
	var acc jobAccepted
	decode(t, res, &acc)
	if res.StatusCode != http.StatusAccepted || acc.Words != 2 || res.Header.Get("Location") != "/v1/jobs/"+acc.JobID {
		t.Fatalf("got %d %+v (Location %q), want 202 with 2 words", res.StatusCode, acc, res.Header.Get("Location"))
	}
	fields := map[string]bool{}
	for _, ie := range acc.InputErrors {
		fields[ie.Field] = true
	}
	for _, f := range []string{"words[1]", "words[2]", "words[3].definitions[0].text", "words[4].language", "words[6]"} {
		if !fields[f] {
			t.Errorf("no input error for %s in %+v", f, acc.InputErrors)
		}
	}
	job, err := e.Fleet.Store.Job(context.Background(), acc.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Source != "floridify" || len(job.InputErrors) != 5 || strings.Join(job.Components, ",") != "synonyms,examples" {
		t.Errorf("stored job %+v", job)
	}
}

// TestJobLifecycle drives the API with the Go client against a running fleet: submit, follow to the end,
// list and read batches, retry and cancel, idempotent resubmission, plain-text intake, estimate, metrics.
func TestJobLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{Workers: 1})
	ctx := context.Background()
	c := tasks.NewClient(e.URL, testToken)
	var words []tasks.Word
	for _, w := range sampleWords(t, 4) {
		tw := tasks.Word{Word: w.Word}
		for _, d := range w.Definitions {
			tw.Definitions = append(tw.Definitions, tasks.Definition{PartOfSpeech: d.PartOfSpeech, Text: d.Text})
		}
		words = append(words, tw)
	}
	req := tasks.JobRequest{Words: words, Components: []string{"synonyms", "cefr_level"}, Source: "test", IdempotencyKey: "lifecycle-1"}
	acc, err := c.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Words != 4 || acc.Path != "batch" || acc.Status != string(store.JobSubmitted) {
		t.Fatalf("accepted %+v", acc)
	}
	again, err := c.Submit(ctx, req)
	if err != nil || again.JobID != acc.JobID {
		t.Fatalf("resubmission with the same Idempotency-Key: %+v, %v; want job %s", again, err, acc.JobID)
	}
	wctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	st, err := c.Wait(wctx, acc.JobID, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("waiting for %s: %v (last %+v)", acc.JobID, err, st)
	}
	if !st.Finished || st.Total == 0 || st.States[string(store.StateSucceeded)] != st.Total || len(st.Batches) == 0 {
		t.Fatalf("finished job %+v", st)
	}
	if st.Usage.InputTokens == 0 || st.CostUSD <= 0 || st.SavedUSD <= 0 {
		t.Errorf("tokens and dollars not reported: %+v", st)
	}
	// Batches: listed, readable by our id and OpenAI's, not cancellable once applied.
	var list struct {
		Data []store.Batch `json:"data"`
	}
	decode(t, e.do(t, "GET", "/v1/batches?limit=5", "", nil), &list)
	if len(list.Data) == 0 {
		t.Fatal("no batch listed")
	}
	b := list.Data[0]
	for _, id := range []string{b.ID, b.OpenAIBatchID} {
		var got store.Batch
		res := e.do(t, "GET", "/v1/batches/"+id, "", nil)
		decode(t, res, &got)
		if res.StatusCode != 200 || got.ID != b.ID {
			t.Errorf("GET /v1/batches/%s: %d %s", id, res.StatusCode, got.ID)
		}
	}
	res := e.do(t, "POST", "/v1/batches/"+b.ID+"/cancel", "", nil)
	var eb errorBody
	decode(t, res, &eb)
	if res.StatusCode != http.StatusConflict || eb.Error.Code != "batch_not_cancellable" {
		t.Errorf("cancel of an applied batch: %d %+v", res.StatusCode, eb)
	}
	// A done job cannot be cancelled; a retry with nothing dead requeues nothing. Reads never write: the
	// scheduler's sweep records the finished job done, within a sweep interval.
	for st.Job.Status != string(store.JobDone) {
		select {
		case <-wctx.Done():
			t.Fatalf("job %s finished but not recorded done: %+v", acc.JobID, st.Job)
		case <-time.After(200 * time.Millisecond):
		}
		if st, err = c.Job(wctx, acc.JobID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Cancel(ctx, acc.JobID); err == nil || !strings.Contains(err.Error(), "job_finished") {
		t.Errorf("cancel of a done job: %v, want job_finished", err)
	}
	if rr, err := c.Retry(ctx, acc.JobID); err != nil || rr.RequeuedRequests != 0 {
		t.Errorf("retry: %+v %v", rr, err)
	}
	if _, err := c.Job(ctx, "job_nope"); !tasks.IsNotFound(err) {
		t.Errorf("unknown job: %v, want a 404", err)
	}
	// Plain-text intake with options in the query string.
	res = e.do(t, "POST", "/v1/jobs?components=synonyms&source=shell", "text/plain", strings.NewReader("# names\nperson\nmake\n\nperson\n"))
	var acc2 jobAccepted
	decode(t, res, &acc2)
	if res.StatusCode != http.StatusAccepted || acc2.Words != 2 || len(acc2.InputErrors) != 1 {
		t.Errorf("text submission: %d %+v", res.StatusCode, acc2)
	}
	// Cancel a job through the client before it gets anywhere.
	cj, err := c.Submit(ctx, tasks.JobRequest{Words: []tasks.Word{{Word: "zzyzx"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cr, err := c.Cancel(ctx, cj.JobID); err != nil || cr.Status != string(store.JobCancelled) {
		t.Errorf("cancel: %+v %v", cr, err)
	}
	// Estimate: planned with the real renderer.
	var est struct {
		Words int `json:"words"`
		Modes []struct {
			Mode  string `json:"mode"`
			Total struct {
				Requests int     `json:"requests"`
				BatchUSD float64 `json:"batch_usd"`
			} `json:"total"`
		} `json:"modes"`
		Path string `json:"path"`
	}
	// The job gave these words synonyms already; examples are still missing, so they count.
	eb2, _ := json.Marshal(tasks.JobRequest{Words: words[:2], Components: []string{"synonyms", "examples"}})
	res = e.do(t, "POST", "/v1/estimate?all_modes=true", "application/json", bytes.NewReader(eb2))
	decode(t, res, &est)
	if res.StatusCode != 200 || len(est.Modes) != 3 || est.Modes[0].Total.Requests == 0 || est.Modes[0].Total.BatchUSD <= 0 || est.Path != "batch" {
		t.Errorf("estimate: %d %+v", res.StatusCode, est)
	}
	// Metrics: batchsynth's own numbers from MongoDB and asynq's queues.
	time.Sleep(300 * time.Millisecond) // past the metrics cache
	res = e.do(t, "GET", "/metrics", "", nil)
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`batchsynth_requests{state="succeeded"} %d`, st.Total),
		`batchsynth_batches{state="applied"}`, `batchsynth_spent_usd_total{path="batch"}`, `batchsynth_saved_usd_total`,
		`batchsynth_tokens_total{kind="output",path="batch"}`, `batchsynth_apply_duration_seconds_count`, `batchsynth_poll_lag_seconds`,
		`asynq_queue_size{queue="apply"}`, `asynq_up 1`, `batchsynth_store_up 1`, `batchsynth_http_request_duration_seconds_count{code="202",route="POST /v1/jobs"}`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
