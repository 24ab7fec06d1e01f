package tasks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWordJSON(t *testing.T) {
	ws := []Word{{Word: "person"}, {Word: "run", Language: "en", Definitions: []Definition{{PartOfSpeech: "verb", Text: "move fast"}}}}
	b, err := json.Marshal(ws)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["person",{"word":"run","language":"en","definitions":[{"part_of_speech":"verb","text":"move fast"}]}]`; string(b) != want {
		t.Errorf("marshal: %s, want %s", b, want)
	}
	var back []Word
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0].Word != "person" || back[1].Definitions[0].Text != "move fast" {
		t.Errorf("round trip: %+v", back)
	}
}

// The full round trip against the real server is internal/web's TestJobLifecycle; this checks the client's
// own handling of answers.
func TestClientAnswers(t *testing.T) {
	var gotAuth, gotKey string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotKey = r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/jobs":
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"job_id": "job_1", "status": "submitted", "words": 1, "path": "batch", "input_errors": []}`))
		case "/v1/jobs/job_1":
			_, _ = w.Write([]byte(`{"job": {"id": "job_1", "status": "done"}, "states": {"succeeded": 3}, "total": 3, "settled": 3, "finished": true}`))
		case "/v1/jobs/job%2Fx/cancel", "/v1/jobs/job/x/cancel":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error": {"code": "not_found", "field": "id", "message": "job \"job/x\": not found"}}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`upstream down`))
		}
	}))
	defer ts.Close()
	c := NewClient(ts.URL+"/", "tok")
	ctx := context.Background()
	acc, err := c.Submit(ctx, JobRequest{Words: []Word{{Word: "person"}}, IdempotencyKey: "k1"})
	if err != nil || acc.JobID != "job_1" || gotAuth != "Bearer tok" || gotKey != "k1" {
		t.Fatalf("submit: %+v %v (auth %q, key %q)", acc, err, gotAuth, gotKey)
	}
	st, err := c.Wait(ctx, "job_1", 1)
	if err != nil || !st.Finished || st.States["succeeded"] != 3 {
		t.Errorf("wait: %+v %v", st, err)
	}
	_, err = c.Cancel(ctx, "job/x")
	var ae *APIError
	if !IsNotFound(err) || !errorAs(err, &ae) || ae.Field != "id" || ae.Code != "not_found" {
		t.Errorf("cancel of an unknown job: %v", err)
	}
	if _, err := c.Retry(ctx, "other"); err == nil || !errorAs(err, &ae) || ae.StatusCode != http.StatusBadGateway || ae.Message != "upstream down" {
		t.Errorf("non-JSON error: %v", err)
	}
}

func errorAs(err error, target **APIError) bool {
	e, ok := err.(*APIError)
	if ok {
		*target = e
	}
	return ok
}
