package emulator

import (
	"maps"
	"time"
)

// Batch statuses, as the Batch API spells them.
const (
	StatusValidating = "validating"
	StatusFailed     = "failed"
	StatusInProgress = "in_progress"
	StatusFinalizing = "finalizing"
	StatusCompleted  = "completed"
	StatusExpired    = "expired"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"
)

// LineOutcome says what happened to one input line of a batch.
type LineOutcome string

const (
	// OutcomeSuccess is a 200 line with content valid for its schema.
	OutcomeSuccess LineOutcome = "success"
	// OutcomeRefusal is a 200 line with content null and message.refusal set.
	OutcomeRefusal LineOutcome = "refusal"
	// OutcomeLength is a 200 line with finish_reason "length" and cut content.
	OutcomeLength LineOutcome = "length"
	// OutcomeInvalidSchema is a 200 line whose JSON content breaks its schema.
	OutcomeInvalidSchema LineOutcome = "invalid_schema"
	// OutcomeHTTP4xx is an injected per-request 400 (Faults.RateLine4xx or
	// Faults.RateZeroSuccess) in the error file.
	OutcomeHTTP4xx LineOutcome = "http_4xx"
	// OutcomeBadRequest is a per-request 400 caused by the request body itself
	// (no model, no messages, an unknown response_format type).
	OutcomeBadRequest LineOutcome = "bad_request"
	// OutcomeExpired is a line that never ran because the batch expired.
	OutcomeExpired LineOutcome = "expired"
	// OutcomeCancelled is a line that never ran because the batch was cancelled.
	OutcomeCancelled LineOutcome = "cancelled"
)

// FaultKind names a kind of injected fault in [Stats.Faults].
type FaultKind string

const (
	Fault429           FaultKind = "http_429"
	Fault500           FaultKind = "http_500"
	Fault503           FaultKind = "http_503"
	FaultSlow          FaultKind = "slow"
	FaultLoseCreate    FaultKind = "lose_create"
	FaultFileNotFound  FaultKind = "file_not_found"
	FaultLine4xx       FaultKind = "line_4xx"
	FaultRefusal       FaultKind = "refusal"
	FaultLength        FaultKind = "length"
	FaultInvalidSchema FaultKind = "invalid_schema"
	FaultBatchFail     FaultKind = "batch_fail"
	FaultExpire        FaultKind = "expire"
	FaultZeroSuccess   FaultKind = "zero_success"
)

// RequestCounts mirrors the batch's request_counts.
type RequestCounts struct {
	Total, Completed, Failed int64
}

// Usage mirrors the batch's usage: the sum over the lines in the output file.
// CachedTokens and ReasoningTokens are always 0: the emulator does not model
// prompt caching or reasoning.
type Usage struct {
	InputTokens     int64
	CachedTokens    int64
	OutputTokens    int64
	ReasoningTokens int64
	TotalTokens     int64
}

// LineUsage is the usage billed for one line (zero for lines in the error file).
type LineUsage struct {
	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
}

// BatchError mirrors one entry of a failed batch's errors.data.
type BatchError struct {
	Code    string
	Message string
	Param   string // "" when null
	Line    int64  // 1-based; 0 when null
}

// LineRecord is the outcome of one input line of a finished batch.
type LineRecord struct {
	CustomID string
	Outcome  LineOutcome
	// StatusCode is response.status_code (200 or 400), 0 for lines that never ran.
	StatusCode int
	// InOutput reports whether the line is in the output file (status 200, billed);
	// otherwise it is in the error file.
	InOutput bool
	Usage    LineUsage
}

// BatchRecord is a snapshot of one batch, for tests.
type BatchRecord struct {
	ID           string
	Status       string
	Endpoint     string
	Model        string
	InputFileID  string
	OutputFileID string // "" when absent
	ErrorFileID  string // "" when absent
	Metadata     map[string]string
	CreatedAt    time.Time
	// EstimatedInputTokens is what the batch enqueues against TokenBudget.
	EstimatedInputTokens int64
	RequestCounts        RequestCounts
	Usage                Usage
	Errors               []BatchError
	// Lines holds one record per input line, in input order, once the batch has
	// finished (completed, expired or cancelled); nil before that and for failed
	// batches. Model, EstimatedInputTokens and Lines stay empty until the input
	// file has been read, which happens asynchronously right after create.
	Lines []LineRecord
	// Outcomes counts Lines by outcome.
	Outcomes map[LineOutcome]int
	// CreateResponseLost reports that the create call was answered with an
	// injected 500 or a dropped connection (Faults.RateLoseCreate).
	CreateResponseLost bool
}

// Succeeded returns the lines in the output file (status 200), with the usage
// billed for each.
func (b BatchRecord) Succeeded() []LineRecord {
	var out []LineRecord
	for _, l := range b.Lines {
		if l.InOutput {
			out = append(out, l)
		}
	}
	return out
}

// Stats are the emulator's counters since New.
type Stats struct {
	FilesUploaded int64
	// BatchesCreated counts batches that exist (including those whose create
	// response was lost).
	BatchesCreated int64
	// CreateCalls counts POST /v1/batches requests that reached the create logic
	// (after HTTP-level faults).
	CreateCalls int64
	// CreateAnswered counts create calls answered with the new batch.
	CreateAnswered int64
	// CreateLost counts batches created whose response was dropped (500 or a
	// closed connection).
	CreateLost int64
	// ChatCompletions counts synchronous POST /v1/chat/completions answered 200.
	ChatCompletions int64
	// Faults counts injected faults by kind. Per-line faults are counted when the
	// line's result is written (batch end or synchronous answer).
	Faults map[FaultKind]int64
	// Requests counts HTTP requests by route pattern, e.g.
	// "GET /v1/batches/{batch_id}"; "unmatched" for unknown routes.
	Requests map[string]int64
}

func (s Stats) clone() Stats {
	s.Faults = maps.Clone(s.Faults)
	s.Requests = maps.Clone(s.Requests)
	return s
}
