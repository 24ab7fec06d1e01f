package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"
)

type batch struct {
	seq                int64 // 1-based creation order: s.order[seq-1] is this batch
	id                 string
	endpoint           string
	inputFileID        string
	completionWindow   string
	metadata           map[string]string
	outputExpiresAfter time.Duration
	createdAt          time.Time
	createLost         bool

	// plan is nil until the input file has been read (asynchronously, after
	// create); ready is closed then. A batch makes no transition without a plan.
	plan  *plan
	ready chan struct{}

	status       string
	inProgressAt time.Time
	finalizingAt time.Time
	completedAt  time.Time
	failedAt     time.Time
	expiredAt    time.Time
	cancellingAt time.Time
	cancelledAt  time.Time
	done         int // lines processed when the batch left in_progress

	// Set when the batch reaches a terminal status.
	errs         []BatchError
	outputFileID string
	errorFileID  string
	counts       RequestCounts
	usage        Usage
	lines        []LineRecord
}

func (b *batch) model() string {
	if b.plan == nil {
		return ""
	}
	return b.plan.model
}

func (b *batch) tokens() int64 {
	if b.plan == nil {
		return 0
	}
	return b.plan.tokens
}

func (b *batch) terminal() bool {
	switch b.status {
	case StatusFailed, StatusCompleted, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// Wire shape of a batch.
type batchJSON struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            *string           `json:"model"`
	Errors           *batchErrorsJSON  `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    requestCountsJSON `json:"request_counts"`
	Usage            usageJSON         `json:"usage"`
	Metadata         map[string]string `json:"metadata"`
}

type batchErrorsJSON struct {
	Object string           `json:"object"`
	Data   []batchErrorJSON `json:"data"`
}

type batchErrorJSON struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int64  `json:"line"`
}

type requestCountsJSON struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

type usageJSON struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

type createBatchRequest struct {
	InputFileID        *string         `json:"input_file_id"`
	Endpoint           *string         `json:"endpoint"`
	CompletionWindow   *string         `json:"completion_window"`
	Metadata           json.RawMessage `json:"metadata"`
	OutputExpiresAfter *struct {
		Anchor  string `json:"anchor"`
		Seconds int64  `json:"seconds"`
	} `json:"output_expires_after"`
}

func (s *Server) handleCreateBatch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.CreateCalls++
	s.mu.Unlock()

	var req createBatchRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		writeInvalid(w, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)", "", "")
		return
	}
	switch {
	case req.InputFileID == nil || *req.InputFileID == "":
		writeInvalid(w, "Missing required parameter: 'input_file_id'.", "input_file_id", "missing_required_parameter")
		return
	case req.Endpoint == nil:
		writeInvalid(w, "Missing required parameter: 'endpoint'.", "endpoint", "missing_required_parameter")
		return
	case !slices.Contains(batchEndpoints, *req.Endpoint):
		writeInvalid(w, fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", *req.Endpoint, quoteList(batchEndpoints)), "endpoint", "invalid_value")
		return
	case req.CompletionWindow == nil:
		writeInvalid(w, "Missing required parameter: 'completion_window'.", "completion_window", "missing_required_parameter")
		return
	case *req.CompletionWindow != "24h":
		writeInvalid(w, fmt.Sprintf("Invalid value: '%s'. Supported values are: '24h'.", *req.CompletionWindow), "completion_window", "invalid_value")
		return
	}
	metadata, msg := parseMetadata(req.Metadata)
	if msg != "" {
		writeInvalid(w, msg, "metadata", "invalid_value")
		return
	}
	outputExpiresAfter := FileExpiryDefault
	if oe := req.OutputExpiresAfter; oe != nil {
		if oe.Anchor != "created_at" || oe.Seconds < 3600 || oe.Seconds > 2592000 {
			writeInvalid(w, "Invalid 'output_expires_after': anchor must be 'created_at' and seconds between 3600 and 2592000.", "output_expires_after", "invalid_value")
			return
		}
		outputExpiresAfter = time.Duration(oe.Seconds) * time.Second
	}

	fileID := *req.InputFileID
	s.mu.Lock()
	now := s.cfg.Now()
	f, ok := s.lookupFileLocked(fileID)
	faults := s.faults
	notYetVisible := ok && faults.RateFileNotFound > 0 &&
		now.Sub(f.createdAt) < cmpOr(faults.FileNotFoundWindow, FileNotFoundWindowDefault) &&
		s.rng.Float64() < faults.RateFileNotFound
	if notYetVisible {
		s.stats.Faults[FaultFileNotFound]++
	}
	if !ok || notYetVisible {
		s.mu.Unlock()
		writeInvalid(w, fmt.Sprintf("Cannot find file %s, or project proj_emulator does not have access to it.", fileID), "file_id", "")
		return
	}
	if f.purpose != "batch" {
		s.mu.Unlock()
		writeInvalid(w, fmt.Sprintf("The input file %s has purpose '%s'; the Batch API needs a file uploaded with purpose 'batch'.", fileID, f.purpose), "input_file_id", "invalid_value")
		return
	}
	data := f.data
	s.advanceLocked(now)
	s.seq++
	b := &batch{
		seq:                s.seq,
		id:                 "batch_" + randHex(s.rng, 32),
		endpoint:           *req.Endpoint,
		inputFileID:        fileID,
		completionWindow:   *req.CompletionWindow,
		metadata:           metadata,
		outputExpiresAfter: outputExpiresAfter,
		createdAt:          now,
		ready:              make(chan struct{}),
		status:             StatusValidating,
	}
	s.batches[b.id] = b
	s.order = append(s.order, b)
	s.active = append(s.active, b)
	s.stats.BatchesCreated++
	lose := s.rng.Float64() < faults.RateLoseCreate
	dropConn := s.rng.IntN(2) == 0
	if lose {
		b.createLost = true
		s.stats.CreateLost++
		s.stats.Faults[FaultLoseCreate]++
	} else {
		s.stats.CreateAnswered++
	}
	body := s.batchJSONLocked(b, now)
	s.mu.Unlock()

	// Read and validate the file and precompute every line's answer off the
	// lock and off the request, as OpenAI validates asynchronously.
	go s.prepareBatch(b, data, faults)

	s.log.Info("batch created", slog.String("batch_id", b.id), slog.String("input_file_id", fileID),
		slog.Bool("response_lost", lose))
	if lose {
		if dropConn {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		writeError(w, http.StatusInternalServerError, "server_error",
			"The server had an error while processing your request. Sorry about that! (synthetic fault injected by the batchsynth emulator; the batch was created)", "", "")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// prepareBatch builds b's plan and lets the lifecycle continue.
func (s *Server) prepareBatch(b *batch, data []byte, faults Faults) {
	p := prepare(prepareParams{
		batchID:  b.id,
		endpoint: b.endpoint,
		data:     data,
		faults:   faults,
		seed:     s.cfg.Seed,
		maxLines: s.cfg.MaxLines,
		maxBytes: s.cfg.MaxFileBytes,
		runStart: b.createdAt.Add(s.cfg.ValidatingFor),
		runFor:   s.cfg.InProgressFor,
	})
	s.mu.Lock()
	b.plan = p
	s.advanceLocked(s.cfg.Now())
	s.mu.Unlock()
	close(b.ready)
	s.log.Debug("batch prepared", slog.String("batch_id", b.id), slog.String("model", p.model),
		slog.Int("lines", len(p.lines)), slog.Int64("estimated_input_tokens", p.tokens), slog.Int("validation_errors", len(p.errs)))
}

// awaitPrepared waits until the batches whose validation is due by now (every
// pending batch, with all) have their plans, so that a read sees them advanced.
func (s *Server) awaitPrepared(ctx context.Context, all bool) {
	s.mu.Lock()
	now := s.cfg.Now()
	var waits []chan struct{}
	for _, b := range s.active {
		if b.plan != nil {
			continue
		}
		due := b.createdAt.Add(s.cfg.ValidatingFor)
		if b.status == StatusCancelling {
			due = b.cancellingAt.Add(s.cfg.CancellingFor)
		}
		if all || !due.After(now) {
			waits = append(waits, b.ready)
		}
	}
	s.mu.Unlock()
	for _, c := range waits {
		select {
		case <-c:
		case <-ctx.Done():
			return
		}
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// parseMetadata checks metadata: null or an object of at most 16 string values,
// keys up to 64 and values up to 512 characters. It returns an error message.
func parseMetadata(raw json.RawMessage) (map[string]string, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, "Invalid 'metadata': expected an object with string values."
	}
	if len(fields) > 16 {
		return nil, fmt.Sprintf("Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", len(fields))
	}
	md := make(map[string]string, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		var v string
		if err := json.Unmarshal(fields[k], &v); err != nil {
			return nil, fmt.Sprintf("Invalid type for 'metadata.%s': expected a string.", k)
		}
		if utf8.RuneCountInString(k) > 64 {
			return nil, fmt.Sprintf("Invalid 'metadata': key '%s' is longer than 64 characters.", k)
		}
		if utf8.RuneCountInString(v) > 512 {
			return nil, fmt.Sprintf("Invalid 'metadata.%s': string too long. Expected a string with maximum length 512, but got a string with length %d instead.", k, utf8.RuneCountInString(v))
		}
		md[k] = v
	}
	return md, ""
}

func (s *Server) handleGetBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("batch_id")
	s.awaitPrepared(r.Context(), false)
	s.mu.Lock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	b, ok := s.batches[id]
	var body batchJSON
	if ok {
		body = s.batchJSONLocked(b, now)
	}
	s.mu.Unlock()
	if !ok {
		writeNoSuchBatch(w, id)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func writeNoSuchBatch(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("No batch found with id '%s'.", id), "batch_id", "")
}

func (s *Server) handleListBatches(w http.ResponseWriter, r *http.Request) {
	limit, msg := parseLimit(r, 20, 100)
	if msg != "" {
		writeInvalid(w, msg, "limit", "invalid_value")
		return
	}
	after := r.URL.Query().Get("after")

	s.awaitPrepared(r.Context(), false)
	s.mu.Lock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	// Newest first: walk the creation order backwards.
	start := len(s.order) - 1
	if after != "" {
		start = -1 // an unknown cursor yields an empty page
		if b, ok := s.batches[after]; ok {
			start = int(b.seq) - 2 // s.order[seq-1] is b
		}
	}
	page := make([]batchJSON, 0, min(limit, start+1))
	i := start
	for ; i >= 0 && len(page) < limit; i-- {
		page = append(page, s.batchJSONLocked(s.order[i], now))
	}
	hasMore := i >= 0
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, newList(page, func(b batchJSON) string { return b.ID }, hasMore))
}

func (s *Server) handleCancelBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("batch_id")
	s.awaitPrepared(r.Context(), false)
	s.mu.Lock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	b, ok := s.batches[id]
	if !ok {
		s.mu.Unlock()
		writeNoSuchBatch(w, id)
		return
	}
	switch b.status {
	case StatusValidating:
		b.done = 0
	case StatusInProgress:
		b.done = s.doneAt(b, now)
	case StatusFinalizing:
		b.done = len(b.plan.lines)
	case StatusCancelling:
	default:
		status := b.status
		s.mu.Unlock()
		writeInvalid(w, fmt.Sprintf("Cannot cancel a batch with status '%s'.", status), "", "")
		return
	}
	if b.status != StatusCancelling {
		b.status = StatusCancelling
		b.cancellingAt = now
		s.log.Info("batch cancelling", slog.String("batch_id", b.id), slog.Int("lines_done", b.done))
	}
	body := s.batchJSONLocked(b, now)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// Lifecycle.

type transition int

const (
	toValidated transition = iota + 1 // validating → in_progress or failed
	toFinalizing
	toCompleted
	toCancelled
	toExpiredWindow // the completion window ran out
	toExpiredFault  // Faults.RateExpire
)

// next returns b's next transition and when it happens.
func (s *Server) next(b *batch) (time.Time, transition, bool) {
	if b.plan == nil {
		return time.Time{}, 0, false
	}
	deadline := b.createdAt.Add(s.cfg.CompletionWindow)
	switch b.status {
	case StatusValidating:
		t := b.createdAt.Add(s.cfg.ValidatingFor)
		if t.After(deadline) {
			return deadline, toExpiredWindow, true
		}
		return t, toValidated, true
	case StatusInProgress:
		if b.plan.expire {
			return b.inProgressAt.Add(s.cfg.InProgressFor / 2), toExpiredFault, true
		}
		t := b.inProgressAt.Add(s.cfg.InProgressFor)
		if t.After(deadline) {
			return deadline, toExpiredWindow, true
		}
		return t, toFinalizing, true
	case StatusFinalizing:
		return b.finalizingAt.Add(s.cfg.FinalizingFor), toCompleted, true
	case StatusCancelling:
		return b.cancellingAt.Add(s.cfg.CancellingFor), toCancelled, true
	}
	return time.Time{}, 0, false
}

// advanceLocked applies, in time order, every transition due by now, so that
// one batch's change (a budget released) is seen by the batches after it.
func (s *Server) advanceLocked(now time.Time) {
	for {
		var (
			due  *batch
			at   time.Time
			kind transition
		)
		for _, b := range s.active {
			t, k, ok := s.next(b)
			if !ok || t.After(now) {
				continue
			}
			if due == nil || t.Before(at) {
				due, at, kind = b, t, k
			}
		}
		if due == nil {
			return
		}
		s.applyLocked(due, at, kind)
	}
}

func (s *Server) applyLocked(b *batch, at time.Time, kind transition) {
	n := len(b.plan.lines)
	switch kind {
	case toValidated:
		s.validateLocked(b, at)
	case toFinalizing:
		b.status = StatusFinalizing
		b.finalizingAt = at
		b.done = n
		s.log.Debug("batch finalizing", slog.String("batch_id", b.id))
	case toCompleted:
		s.finishLocked(b, StatusCompleted, at)
	case toCancelled:
		s.finishLocked(b, StatusCancelled, at)
	case toExpiredWindow:
		if b.status == StatusInProgress {
			b.done = s.doneAt(b, at)
		}
		s.finishLocked(b, StatusExpired, at)
	case toExpiredFault:
		b.done = n / 2
		s.stats.Faults[FaultExpire]++
		s.finishLocked(b, StatusExpired, at)
	}
}

func (s *Server) validateLocked(b *batch, at time.Time) {
	p := b.plan
	switch {
	case len(p.errs) > 0:
		s.failLocked(b, at, p.errs)
		return
	case p.failSynthetic:
		s.stats.Faults[FaultBatchFail]++
		s.failLocked(b, at, []BatchError{{
			Code:    "batch_failed",
			Message: "The batch failed during validation (synthetic fault injected by the batchsynth emulator; the input file is fine).",
		}})
		return
	}
	if budget := s.cfg.budgetFor(p.model); budget > 0 {
		var enqueued int64
		for _, o := range s.active {
			if o != b && o.plan != nil && o.plan.model == p.model && (o.status != StatusValidating || o.seq < b.seq) {
				enqueued += o.plan.tokens
			}
		}
		if enqueued+p.tokens > budget {
			s.failLocked(b, at, []BatchError{{
				Code: "token_limit_exceeded",
				Message: fmt.Sprintf("Enqueued token limit reached for %s in organization org-emulator. Limit: %s enqueued tokens. "+
					"Please try again once some in_progress batches have been completed.", p.model, commas(budget)),
			}})
			return
		}
	}
	b.status = StatusInProgress
	b.inProgressAt = at
	s.log.Debug("batch in progress", slog.String("batch_id", b.id), slog.Int("lines", len(p.lines)))
}

func (s *Server) failLocked(b *batch, at time.Time, errs []BatchError) {
	b.status = StatusFailed
	b.failedAt = at
	b.errs = errs
	s.removeActiveLocked(b)
	s.log.Info("batch failed", slog.String("batch_id", b.id), slog.String("code", errs[0].Code), slog.String("message", errs[0].Message))
}

func (s *Server) removeActiveLocked(b *batch) {
	s.active = slices.DeleteFunc(s.active, func(o *batch) bool { return o == b })
}

// doneAt returns how many lines of an in_progress batch have run by t.
func (s *Server) doneAt(b *batch, t time.Time) int {
	n := len(b.plan.lines)
	if s.cfg.InProgressFor <= 0 {
		return n
	}
	elapsed := t.Sub(b.inProgressAt)
	if elapsed <= 0 {
		return 0
	}
	d := int(float64(n) * float64(elapsed) / float64(s.cfg.InProgressFor))
	return min(max(d, 0), n)
}

// finishLocked ends b with status (completed, expired or cancelled) at time at,
// writing its output and error files from the lines done so far.
func (s *Server) finishLocked(b *batch, status string, at time.Time) {
	b.status = status
	switch status {
	case StatusCompleted:
		b.completedAt = at
	case StatusExpired:
		b.expiredAt = at
	case StatusCancelled:
		b.cancelledAt = at
	}
	s.removeActiveLocked(b)
	p := b.plan
	if len(p.errs) > 0 {
		// Cancelled or expired before an invalid file failed validation.
		s.log.Info("batch finished", slog.String("batch_id", b.id), slog.String("status", status))
		return
	}
	if status == StatusCompleted && p.zeroSuccess {
		s.stats.Faults[FaultZeroSuccess]++
	}

	notRunOutcome, notRunCode, notRunMsg := OutcomeExpired, "batch_expired", "This request could not be executed before the completion window expired."
	if status == StatusCancelled {
		notRunOutcome, notRunCode, notRunMsg = OutcomeCancelled, "batch_cancelled", "This request was not executed because the batch was cancelled."
	}
	var out, errLines [][]byte
	b.lines = make([]LineRecord, len(p.lines))
	for i, l := range p.lines {
		rec := LineRecord{CustomID: l.customID}
		if i >= b.done {
			rec.Outcome = notRunOutcome
			line, _ := json.Marshal(resultLine{ID: l.id, CustomID: l.customID, Error: &lineError{Code: notRunCode, Message: notRunMsg}})
			errLines = append(errLines, line)
			b.lines[i] = rec
			continue
		}
		rec.Outcome, rec.StatusCode = l.outcome, l.status
		if l.status == 200 {
			rec.InOutput = true
			rec.Usage = LineUsage{InputTokens: l.promptTokens, OutputTokens: l.completionTokens}
			out = append(out, l.json)
		} else {
			errLines = append(errLines, l.json)
		}
		b.lines[i] = rec
		switch l.outcome {
		case OutcomeHTTP4xx:
			if !p.zeroSuccess {
				s.stats.Faults[FaultLine4xx]++
			}
		case OutcomeRefusal:
			s.stats.Faults[FaultRefusal]++
		case OutcomeLength:
			s.stats.Faults[FaultLength]++
		case OutcomeInvalidSchema:
			s.stats.Faults[FaultInvalidSchema]++
		}
	}
	if p.shuffle {
		rng := seeded(s.cfg.Seed, b.id, "shuffle")
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		rng.Shuffle(len(errLines), func(i, j int) { errLines[i], errLines[j] = errLines[j], errLines[i] })
	}
	if len(out) > 0 {
		f := s.addFileLocked(b.id+"_output.jsonl", purposeBatchOutput, joinLines(out), at, b.outputExpiresAfter)
		b.outputFileID = f.id
	}
	if len(errLines) > 0 {
		f := s.addFileLocked(b.id+"_error.jsonl", purposeBatchOutput, joinLines(errLines), at, b.outputExpiresAfter)
		b.errorFileID = f.id
	}

	d := b.done
	b.counts = RequestCounts{Total: int64(len(p.lines)), Completed: int64(p.succPrefix[d])}
	b.counts.Failed = b.counts.Total - b.counts.Completed
	b.usage = usageOf(p, d)
	s.log.Info("batch finished", slog.String("batch_id", b.id), slog.String("status", status),
		slog.Int64("completed", b.counts.Completed), slog.Int64("failed", b.counts.Failed),
		slog.String("output_file_id", b.outputFileID), slog.String("error_file_id", b.errorFileID))
}

func joinLines(lines [][]byte) []byte {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	for _, l := range lines {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func usageOf(p *plan, d int) Usage {
	u := Usage{InputTokens: p.promptPrefix[d], OutputTokens: p.complPrefix[d]}
	u.TotalTokens = u.InputTokens + u.OutputTokens
	return u
}

// progressLocked returns the counts and usage b shows at now.
func (s *Server) progressLocked(b *batch, now time.Time) (RequestCounts, Usage) {
	p := b.plan
	switch {
	case b.terminal():
		return b.counts, b.usage
	case b.status == StatusValidating || p == nil:
		return RequestCounts{}, Usage{}
	}
	d := b.done
	if b.status == StatusInProgress {
		d = s.doneAt(b, now)
	}
	c := RequestCounts{Total: int64(len(p.lines)), Completed: int64(p.succPrefix[d])}
	c.Failed = int64(d) - c.Completed
	return c, usageOf(p, d)
}

func (s *Server) batchJSONLocked(b *batch, now time.Time) batchJSON {
	counts, usage := s.progressLocked(b, now)
	out := batchJSON{
		ID:               b.id,
		Object:           "batch",
		Endpoint:         b.endpoint,
		Model:            strPtr(b.model()),
		InputFileID:      b.inputFileID,
		CompletionWindow: b.completionWindow,
		Status:           b.status,
		OutputFileID:     strPtr(b.outputFileID),
		ErrorFileID:      strPtr(b.errorFileID),
		CreatedAt:        unix(b.createdAt),
		InProgressAt:     unixPtr(b.inProgressAt),
		ExpiresAt:        unixPtr(b.createdAt.Add(s.cfg.CompletionWindow)),
		FinalizingAt:     unixPtr(b.finalizingAt),
		CompletedAt:      unixPtr(b.completedAt),
		FailedAt:         unixPtr(b.failedAt),
		ExpiredAt:        unixPtr(b.expiredAt),
		CancellingAt:     unixPtr(b.cancellingAt),
		CancelledAt:      unixPtr(b.cancelledAt),
		RequestCounts:    requestCountsJSON{Total: counts.Total, Completed: counts.Completed, Failed: counts.Failed},
		Metadata:         b.metadata,
	}
	out.Usage.InputTokens = usage.InputTokens
	out.Usage.InputTokensDetails.CachedTokens = usage.CachedTokens
	out.Usage.OutputTokens = usage.OutputTokens
	out.Usage.OutputTokensDetails.ReasoningTokens = usage.ReasoningTokens
	out.Usage.TotalTokens = usage.TotalTokens
	if len(b.errs) > 0 {
		out.Errors = &batchErrorsJSON{Object: "list"}
		for _, e := range b.errs {
			je := batchErrorJSON{Code: e.Code, Message: e.Message, Param: strPtr(e.Param)}
			if e.Line > 0 {
				line := e.Line
				je.Line = &line
			}
			out.Errors.Data = append(out.Errors.Data, je)
		}
	}
	return out
}

func (s *Server) recordLocked(b *batch, now time.Time) BatchRecord {
	counts, usage := s.progressLocked(b, now)
	rec := BatchRecord{
		ID:                   b.id,
		Status:               b.status,
		Endpoint:             b.endpoint,
		Model:                b.model(),
		InputFileID:          b.inputFileID,
		OutputFileID:         b.outputFileID,
		ErrorFileID:          b.errorFileID,
		Metadata:             maps.Clone(b.metadata),
		CreatedAt:            b.createdAt,
		EstimatedInputTokens: b.tokens(),
		RequestCounts:        counts,
		Usage:                usage,
		Errors:               slices.Clone(b.errs),
		Lines:                slices.Clone(b.lines),
		CreateResponseLost:   b.createLost,
	}
	if b.lines != nil {
		rec.Outcomes = make(map[LineOutcome]int)
		for _, l := range b.lines {
			rec.Outcomes[l.Outcome]++
		}
	}
	return rec
}
