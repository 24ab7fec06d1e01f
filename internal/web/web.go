// Package web is the HTTP face of batchsynth (`batchsynth serve`): the JSON API the main app submits
// through (described in openapi.yaml, served at /openapi.yaml), the dashboard at /, Asynqmon at
// /monitoring, Prometheus metrics at /metrics and /healthz. Everything but /healthz, the login page and
// the dashboard's static assets sits behind BATCHSYNTH_API_TOKEN.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/floridify/batchsynth/internal/metrics"
	"github.com/floridify/batchsynth/internal/pipeline"
)

// Limits of the API.
const (
	// MaxBodyBytesDefault bounds a request body: 100,000 words with a few definitions each fit.
	MaxBodyBytesDefault = 64 << 20
	// MaxWordsDefault bounds the words of one submission; larger lists are split by the caller.
	MaxWordsDefault = 500_000
	// MaxEstimateWords bounds POST /v1/estimate, which renders every request to count its tokens.
	MaxEstimateWords = 20_000
	listLimitDefault = 50
	listLimitMax     = 500
)

//go:embed openapi.yaml
var openAPISpec []byte

//go:embed assets
var assetsFS embed.FS

// Server serves the HTTP API, the dashboard, Asynqmon and metrics.
type Server struct {
	Deps     *pipeline.Deps
	RedisOpt asynq.RedisConnOpt // Asynqmon's connection; nil leaves /monitoring out
	// Redis, when set, backs Idempotency-Key on submissions.
	Redis redis.UniversalClient
	Token string // BATCHSYNTH_API_TOKEN; empty leaves everything open (dev, bound to localhost)
	Log   *slog.Logger
	// Registry is served at /metrics; nil gives a fresh one with no collectors.
	Registry *prometheus.Registry
	// Metrics feeds the dashboard's totals and chart; nil builds one over Deps.Store.
	Metrics *metrics.Source
	// MonitoringWritable lets Asynqmon pause queues and delete tasks; it is read-only otherwise.
	MonitoringWritable bool
	MaxBodyBytes       int64
	MaxWords           int

	once     sync.Once
	handler  http.Handler
	mux      *http.ServeMux
	mon      *asynqmon.HTTPHandler
	pages    *template.Template
	live     liveCache
	httpReqs *prometheus.HistogramVec
}

// route is one entry of the router. The table is the router's only source, so that the OpenAPI test can
// compare it with openapi.yaml in both directions.
type route struct {
	method  string // "" for a subtree that takes any method (Asynqmon)
	pattern string // net/http pattern syntax, as in openapi.yaml ({name...} for a rest-of-path)
	public  bool   // reachable without the token
	handler http.Handler
}

func (s *Server) routes() []route {
	hf := func(f http.HandlerFunc) http.Handler { return f }
	reg := s.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	rs := []route{
		{method: "GET", pattern: "/healthz", public: true, handler: hf(s.healthz)},
		{method: "GET", pattern: "/metrics", handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
		{method: "GET", pattern: "/openapi.yaml", handler: hf(s.openapi)},

		{method: "POST", pattern: "/v1/jobs", handler: hf(s.createJob)},
		{method: "POST", pattern: "/batch/synthesize", handler: hf(s.createJob)},
		{method: "GET", pattern: "/v1/jobs", handler: hf(s.listJobs)},
		{method: "GET", pattern: "/v1/jobs/{id}", handler: hf(s.getJob)},
		{method: "POST", pattern: "/v1/jobs/{id}/cancel", handler: hf(s.cancelJob)},
		{method: "POST", pattern: "/v1/jobs/{id}/retry", handler: hf(s.retryJob)},
		{method: "GET", pattern: "/v1/batches", handler: hf(s.listBatches)},
		{method: "GET", pattern: "/v1/batches/{id}", handler: hf(s.getBatch)},
		{method: "POST", pattern: "/v1/batches/{id}/cancel", handler: hf(s.cancelBatch)},
		{method: "POST", pattern: "/v1/estimate", handler: hf(s.estimate)},
		{method: "GET", pattern: "/v1/stats", handler: hf(s.stats)},

		{method: "GET", pattern: "/{$}", handler: hf(s.dashboard)},
		{method: "GET", pattern: "/ui/live", handler: hf(s.liveFragment)},
		{method: "GET", pattern: "/login", public: true, handler: hf(s.loginPage)},
		{method: "POST", pattern: "/login", public: true, handler: hf(s.login)},
		{method: "POST", pattern: "/logout", public: true, handler: hf(s.logout)},
		{method: "GET", pattern: "/static/{file...}", public: true, handler: s.static()},
	}
	if s.RedisOpt != nil {
		rs = append(rs, route{pattern: "/monitoring/", handler: hf(func(w http.ResponseWriter, r *http.Request) { s.mon.ServeHTTP(w, r) })})
	}
	return rs
}

// Handler returns the routed, authenticated handler. It is built once; later calls return the same one.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.build)
	return s.handler
}

func (s *Server) build() {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = MaxBodyBytesDefault
	}
	if s.MaxWords <= 0 {
		s.MaxWords = MaxWordsDefault
	}
	if s.Metrics == nil && s.Deps != nil {
		s.Metrics = metrics.NewSource(s.Deps.Store)
	}
	s.pages = template.Must(template.New("pages").Funcs(templateFuncs).ParseFS(assetsFS, "assets/*.html"))
	s.httpReqs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "batchsynth_http_request_duration_seconds", Help: "HTTP requests served, by route and status code.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})
	if s.Registry != nil {
		if err := s.Registry.Register(s.httpReqs); err != nil {
			s.Log.Warn("http metrics not registered", "error", err)
		}
	}
	if s.RedisOpt != nil {
		s.mon = asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: s.RedisOpt, ReadOnly: !s.MonitoringWritable})
	}
	s.mux = http.NewServeMux()
	public := map[string]bool{}
	for _, r := range s.routes() {
		pattern := r.pattern
		if r.method != "" {
			pattern = r.method + " " + pattern
		}
		s.mux.Handle(pattern, r.handler)
		public[pattern] = r.public
	}
	s.handler = s.observe(s.authenticate(public, s.fallback(s.mux)))
}

// Close releases Asynqmon's Redis connections.
func (s *Server) Close() error {
	if s.mon != nil {
		return s.mon.Close()
	}
	return nil
}

// fallback answers unrouted paths and wrong methods with the API's JSON errors instead of net/http's text.
func (s *Server) fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			// Through the mux, which sets the path values (r.PathValue) that Handler does not.
			mux.ServeHTTP(w, r)
			return
		}
		cw := &codeCapture{header: http.Header{}}
		h.ServeHTTP(cw, r)
		if cw.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", cw.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		if cw.code == http.StatusMovedPermanently || cw.code == http.StatusTemporaryRedirect || cw.code == http.StatusPermanentRedirect {
			// net/http's redirect of /monitoring to /monitoring/.
			h.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "no_route", "", "no such endpoint: "+r.Method+" "+r.URL.Path+" (see /openapi.yaml)")
	})
}

type codeCapture struct {
	header http.Header
	code   int
}

func (c *codeCapture) Header() http.Header         { return c.header }
func (c *codeCapture) Write(b []byte) (int, error) { return len(b), nil }
func (c *codeCapture) WriteHeader(code int)        { c.code = code }

// observe records each request's duration under its route pattern (never the raw path: ids would make
// the label set unbounded).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		_, pattern := s.mux.Handler(r)
		if pattern == "" {
			pattern = "unrouted"
		}
		if strings.HasPrefix(pattern, "/monitoring/") {
			pattern = "/monitoring/"
		}
		s.httpReqs.WithLabelValues(pattern, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Flush keeps streaming answers (Asynqmon) working through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.Deps.Store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "mongodb_unreachable", "", "MongoDB does not answer")
		return
	}
	if s.Redis != nil {
		if err := s.Redis.Ping(ctx).Err(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "redis_unreachable", "", "Redis does not answer")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPISpec)
}

func (s *Server) static() http.Handler {
	sub, err := fs.Sub(assetsFS, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}

// fail maps pipeline errors to API errors: the typed errors of the pipeline's rules map here and only here
// (the dashboard's buttons show their message). Internal errors are logged with the request's ids and
// answered without details: a driver message may quote a URI.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *pipeline.InvalidInputError
	switch {
	case errors.Is(err, pipeline.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "id", err.Error())
		return
	case errors.Is(err, pipeline.ErrJobFinished):
		writeError(w, http.StatusConflict, "job_finished", "id", err.Error())
		return
	case errors.Is(err, pipeline.ErrNotCancellable):
		writeError(w, http.StatusConflict, "batch_not_cancellable", "id", err.Error())
		return
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, "invalid_field", ie.Field, ie.Message)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "id", r.PathValue("id"), "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "", "internal error; see the web process's log")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// apiError is the body of every error answer: {"error": {"code", "field", "message"}}.
type apiError struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, errCode, field, msg string) {
	writeJSON(w, code, map[string]apiError{"error": {Code: errCode, Field: field, Message: msg}})
}

// routeList returns "METHOD pattern" of every route, sorted; for tests and docs.
func (s *Server) routeList() []string {
	var out []string
	for _, r := range s.routes() {
		m := r.method
		if m == "" {
			m = "*"
		}
		out = append(out, m+" "+r.pattern)
	}
	sort.Strings(out)
	return out
}
