package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HeaderSynthetic is set on every response: the emulator's content is synthetic.
const HeaderSynthetic = "X-Batchsynth-Emulator"

// SystemFingerprint is the system_fingerprint of every synthetic chat.completion.
const SystemFingerprint = "batchsynth-emulator"

// Errors returned by [Server.Expire].
var (
	ErrBatchNotFound   = errors.New("batch not found")
	ErrBatchNotRunning = errors.New("batch is not validating or in progress")
)

// Server is an in-memory emulator of OpenAI's Files and Batches APIs (plus a
// synchronous /v1/chat/completions) whose answers are schema-valid synthetic
// content. It is an http.Handler; every method is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	requestSeq atomic.Int64

	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand // ids and HTTP-level fault draws
	seq     int64      // creation sequence for files and batches
	files   map[string]*storedFile
	fileIDs []string // upload order, deleted files removed lazily
	batches map[string]*batch
	order   []*batch // creation order
	active  []*batch // not terminal, creation order
	stats   Stats
}

// New returns a Server for cfg with [Config.WithDefaults] applied. It does not
// validate cfg; call [Config.Validate] first where the values come from a user.
func New(cfg Config) *Server {
	cfg = cfg.WithDefaults()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("component", "emulator")),
		faults:  cfg.Faults,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		files:   make(map[string]*storedFile),
		batches: make(map[string]*batch),
		stats: Stats{
			Faults:   make(map[FaultKind]int64),
			Requests: make(map[string]int64),
		},
	}
	mux := http.NewServeMux()
	s.handle(mux, "POST /v1/files", s.handleUploadFile)
	s.handle(mux, "GET /v1/files", s.handleListFiles)
	s.handle(mux, "GET /v1/files/{file_id}", s.handleGetFile)
	s.handle(mux, "GET /v1/files/{file_id}/content", s.handleFileContent)
	s.handle(mux, "DELETE /v1/files/{file_id}", s.handleDeleteFile)
	s.handle(mux, "POST /v1/batches", s.handleCreateBatch)
	s.handle(mux, "GET /v1/batches", s.handleListBatches)
	s.handle(mux, "GET /v1/batches/{batch_id}", s.handleGetBatch)
	s.handle(mux, "POST /v1/batches/{batch_id}/cancel", s.handleCancelBatch)
	s.handle(mux, "POST /v1/chat/completions", s.handleChatCompletion)
	mux.HandleFunc("/", s.handleUnmatched)
	s.mux = mux
	return s
}

// ServeHTTP serves /v1/files…, /v1/batches… and /v1/chat/completions.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set(HeaderSynthetic, "synthetic")
	h.Set("X-Request-Id", fmt.Sprintf("req_emulator%020d", s.requestSeq.Add(1)))
	s.mux.ServeHTTP(w, r)
}

// SetFaults switches the injected faults. HTTP-level faults apply from the next
// request; batch-level and per-line faults apply to batches created afterwards.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// Batches returns a snapshot of every batch ever created, oldest first, with
// statuses advanced to now.
func (s *Server) Batches() []BatchRecord {
	s.awaitPrepared(context.Background(), true)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	out := make([]BatchRecord, 0, len(s.order))
	for _, b := range s.order {
		out = append(out, s.recordLocked(b, now))
	}
	return out
}

// Expire forces a validating or in_progress batch to expire now: the lines done
// so far go to the output file, the rest become batch_expired lines in the error
// file.
func (s *Server) Expire(batchID string) error {
	s.mu.Lock()
	b, ok := s.batches[batchID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("error expiring batch %q: %w", batchID, ErrBatchNotFound)
	}
	<-b.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	switch b.status {
	case StatusValidating:
		b.done = 0
	case StatusInProgress:
		b.done = s.doneAt(b, now)
	default:
		return fmt.Errorf("error expiring batch %q (status %s): %w", batchID, b.status, ErrBatchNotRunning)
	}
	s.finishLocked(b, StatusExpired, now)
	return nil
}

// handle registers h under pattern, counting the request and injecting
// HTTP-level faults first.
func (s *Server) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Requests[pattern]++
		s.mu.Unlock()
		if s.injectHTTPFault(w, r, pattern) {
			return
		}
		h(w, r)
	}))
}

func (s *Server) handleUnmatched(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests["unmatched"]++
	s.mu.Unlock()
	writeError(w, http.StatusNotFound, "invalid_request_error",
		fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "", "")
}

// injectHTTPFault applies the slow, 429, 500 and 503 faults. It reports whether
// the request has been answered (or abandoned).
func (s *Server) injectHTTPFault(w http.ResponseWriter, r *http.Request, pattern string) bool {
	s.mu.Lock()
	f := s.faults
	slow := s.rng.Float64() < f.RateSlow
	u := s.rng.Float64()
	var kind FaultKind
	switch {
	case u < f.Rate429:
		kind = Fault429
	case u < f.Rate429+f.Rate500:
		kind = Fault500
	case u < f.Rate429+f.Rate500+f.Rate503:
		kind = Fault503
	}
	if slow {
		s.stats.Faults[FaultSlow]++
	}
	if kind != "" {
		s.stats.Faults[kind]++
	}
	s.mu.Unlock()

	if slow && f.SlowDelay > 0 {
		s.log.Debug("injecting slow answer", slog.String("route", pattern), slog.Duration("delay", f.SlowDelay))
		t := time.NewTimer(f.SlowDelay)
		select {
		case <-r.Context().Done():
			// The client gave up, or the server is shutting down: answer in
			// case anyone still listens.
			t.Stop()
			writeError(w, http.StatusServiceUnavailable, "server_error", "The request was abandoned while delayed by an injected slow fault.", "", "")
			return true
		case <-t.C:
		}
	}
	if kind == "" {
		return false
	}
	s.log.Debug("injecting HTTP fault", slog.String("route", pattern), slog.String("fault", string(kind)))
	switch kind {
	case Fault429:
		ms := f.RetryAfter.Milliseconds()
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
		writeError(w, http.StatusTooManyRequests, "requests",
			"Rate limit reached for requests (synthetic fault injected by the batchsynth emulator). Please try again later.",
			"", "rate_limit_exceeded")
	case Fault500:
		writeError(w, http.StatusInternalServerError, "server_error",
			"The server had an error while processing your request. Sorry about that! (synthetic fault injected by the batchsynth emulator)",
			"", "")
	case Fault503:
		writeError(w, http.StatusServiceUnavailable, "server_error",
			"The engine is currently overloaded, please try again later. (synthetic fault injected by the batchsynth emulator)",
			"", "")
	}
	return true
}

// newIDLocked returns prefix followed by n random alphanumerics. s.mu must be held.
func (s *Server) newIDLocked(prefix string, n int) string {
	return prefix + randString(s.rng, n)
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[r.IntN(len(idAlphabet))]
	}
	return string(b)
}

func randHex(r *rand.Rand, n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[r.IntN(16)]
	}
	return string(b)
}

// apiError is the body of the OpenAI error envelope.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

type errorEnvelope struct {
	Error apiError `json:"error"`
}

func newAPIError(typ, msg, param, code string) apiError {
	e := apiError{Message: msg, Type: typ}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	return e
}

// writeError writes the OpenAI error envelope; empty param or code are null.
func writeError(w http.ResponseWriter, status int, typ, msg, param, code string) {
	writeJSON(w, status, errorEnvelope{Error: newAPIError(typ, msg, param, code)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "error encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeInvalid(w http.ResponseWriter, msg, param, code string) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", msg, param, code)
}

// listEnvelope is the body of a cursor-paginated list.
type listEnvelope[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func newList[T any](data []T, id func(T) string, hasMore bool) listEnvelope[T] {
	l := listEnvelope[T]{Object: "list", Data: data, HasMore: hasMore}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(data) > 0 {
		first, last := id(data[0]), id(data[len(data)-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l
}

// parseLimit reads the limit query parameter: def when absent, 1..max otherwise.
// It returns an API error message for a bad value.
func parseLimit(r *http.Request, def, max int) (int, string) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Sprintf("Invalid 'limit': expected an integer between 1 and %d, got %q.", max, v)
	}
	return n, ""
}

func unix(t time.Time) int64 { return t.Unix() }

func unixPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
