package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/store"
)

var specMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

// specOperations lists "METHOD /path" of every operation under the spec's paths. It reads the layout
// openapi.yaml keeps (paths at two spaces, methods at four), so a path written any other way fails the
// comparison below rather than slipping through.
func specOperations(t *testing.T, spec string) []string {
	t.Helper()
	var out []string
	inPaths, path := false, ""
	for _, line := range strings.Split(spec, "\n") {
		if line == "paths:" {
			inPaths = true
			continue
		}
		if !inPaths {
			continue
		}
		if line != "" && line[0] != ' ' {
			break // the next top-level key
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key := strings.TrimSuffix(strings.TrimSpace(line), ":")
		switch {
		case indent == 2 && strings.HasPrefix(key, "/"):
			path = key
		case indent == 4 && specMethods[key]:
			out = append(out, strings.ToUpper(key)+" "+path)
		}
	}
	if len(out) == 0 {
		t.Fatal("no operation found under paths: in openapi.yaml")
	}
	slices.Sort(out)
	return out
}

// routedOperations lists the router's table in the spec's spelling.
func routedOperations(s *Server) []string {
	var out []string
	for _, r := range s.routeList() {
		method, pattern, _ := strings.Cut(r, " ")
		if method == "*" {
			method = "GET" // Asynqmon's subtree; the spec lists its page
		}
		pattern = strings.ReplaceAll(pattern, "{$}", "")
		pattern = strings.ReplaceAll(pattern, "...}", "}")
		out = append(out, method+" "+pattern)
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIMatchesRouter keeps openapi.yaml and the router from drifting: the same operations on both
// sides, and every operation of the spec answered by its route (not 404 or 405) on a real server.
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t, envOptions{})
	spec := specOperations(t, string(openAPISpec))
	routed := routedOperations(e.Srv)
	for _, op := range spec {
		if !slices.Contains(routed, op) {
			t.Errorf("openapi.yaml has %s, the router does not", op)
		}
	}
	for _, op := range routed {
		if !slices.Contains(spec, op) {
			t.Errorf("the router has %s, openapi.yaml does not", op)
		}
	}

	// Real ids, so that {id} routes answer from their handler rather than with not_found.
	ctx := context.Background()
	job, err := e.Fleet.Deps.Submit(ctx, submission(t, sampleWords(t, 2)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	batch := store.Batch{ID: "sb_openapi", Model: "gpt-4o-mini", State: store.BatchApplied, StatusHistory: []store.StatusChange{}, CreatedAt: now, UpdatedAt: now}
	if _, err := e.Fleet.Store.Collection(store.CollBatches).InsertOne(ctx, batch); err != nil {
		t.Fatal(err)
	}
	jobBody := `{"words": ["person", {"word": "make", "definitions": [{"part_of_speech": "verb", "text": "cause to exist"}]}], "components": ["synonyms"]}`
	for _, op := range spec {
		method, path, _ := strings.Cut(op, " ")
		target := path
		if strings.HasPrefix(path, "/v1/batches/") {
			target = strings.ReplaceAll(target, "{id}", batch.ID)
		}
		target = strings.ReplaceAll(target, "{id}", job.ID)
		target = strings.ReplaceAll(target, "{file}", "app.css")
		var body io.Reader
		ct := ""
		switch {
		case method == "POST" && path == "/login":
			body, ct = strings.NewReader(url.Values{"token": {testToken}}.Encode()), "application/x-www-form-urlencoded"
		case method == "POST" && (path == "/v1/jobs" || path == "/batch/synthesize" || path == "/v1/estimate"):
			body, ct = strings.NewReader(jobBody), "application/json"
		}
		req, err := http.NewRequest(method, e.URL+target, body)
		if err != nil {
			t.Fatal(err)
		}
		if _, pattern := e.Srv.mux.Handler(req); pattern == "" {
			t.Errorf("%s: %s is not routed", op, target)
			continue
		}
		res := e.do(t, method, target, ct, body)
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s: %s %s answered %d: %s", op, method, target, res.StatusCode, msg)
		}
	}
}
