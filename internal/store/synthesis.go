package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// batchsynth's own collections.
const (
	CollJobs     = "synthesis_jobs"
	CollInputs   = "synthesis_job_inputs"
	CollRequests = "synthesis_requests"
	// CollRequestBodies holds RequestBody documents.
	CollRequestBodies = "synthesis_request_bodies"
	CollBatches       = "synthesis_batches"
	CollModelHold     = "synthesis_models"
)

// Job is one submission (a words file, an API call).
type Job struct {
	ID         string    `bson:"_id" json:"id"`
	Source     string    `bson:"source" json:"source"`
	Components []string  `bson:"components" json:"components"`
	Mode       string    `bson:"mode" json:"mode"`
	Model      string    `bson:"model" json:"model"`
	Force      bool      `bson:"force" json:"force"`
	NoCache    bool      `bson:"no_cache,omitempty" json:"no_cache,omitempty"` // result cache off: send every request
	Priority   string    `bson:"priority,omitempty" json:"priority,omitempty"`
	Status     JobStatus `bson:"status" json:"status"`
	Chunks     int       `bson:"chunks" json:"chunks"`
	Expanded   []int     `bson:"expanded" json:"-"`
	WordsTotal int       `bson:"words_total" json:"words_total"`
	// WordsMissing lists plain-text words that are not in Floridify's collections: reported, never dropped silently.
	WordsMissing []string     `bson:"words_missing" json:"words_missing"`
	InputErrors  []InputError `bson:"input_errors" json:"input_errors"`
	Definitions  int          `bson:"definitions" json:"definitions"`
	CreatedAt    time.Time    `bson:"created_at" json:"created_at"`
	UpdatedAt    time.Time    `bson:"updated_at" json:"updated_at"`
	ExpandedAt   *time.Time   `bson:"expanded_at,omitempty" json:"expanded_at,omitempty"`
	FinishedAt   *time.Time   `bson:"finished_at,omitempty" json:"finished_at,omitempty"`
}

// InputError names the line (1-based) or field of a submission that was rejected; the rest went on.
type InputError struct {
	Line    int    `bson:"line,omitempty" json:"line,omitempty"`
	Field   string `bson:"field,omitempty" json:"field,omitempty"`
	Word    string `bson:"word,omitempty" json:"word,omitempty"`
	Message string `bson:"message" json:"message"`
}

// InputDefinition and InputWord are one submitted word (with definitions when the submission carried them).
type InputDefinition struct {
	PartOfSpeech string `bson:"part_of_speech" json:"part_of_speech"`
	Text         string `bson:"text" json:"text"`
}

type InputWord struct {
	Word        string            `bson:"word" json:"word"`
	Language    string            `bson:"language,omitempty" json:"language,omitempty"`
	Definitions []InputDefinition `bson:"definitions,omitempty" json:"definitions,omitempty"`
	Line        int               `bson:"line,omitempty" json:"-"`
}

// JobInput is one chunk of a job's words, stored so that task payloads carry only the job id.
type JobInput struct {
	ID    string     `bson:"_id"`
	JobID string     `bson:"job_id"`
	Seq   int        `bson:"seq"`
	Words InputWords `bson:"words"`
}

// InputWords is a chunk's words. It is stored as one BSON binary value holding the words' own BSON
// document, not as an array of documents: nothing queries inside a chunk, and FerretDB stores one opaque
// value many times faster than thousands of nested documents (docs/benchmarks.md, "Intake"). Chunks
// stored as arrays still read.
type InputWords []InputWord

type inputWordsDoc struct {
	W []InputWord `bson:"w"`
}

// MarshalBSONValue implements bson.ValueMarshaler.
func (w InputWords) MarshalBSONValue() (byte, []byte, error) {
	doc, err := bson.Marshal(inputWordsDoc{W: w})
	if err != nil {
		return 0, nil, err
	}
	out := make([]byte, 5, 5+len(doc)) // int32 length, subtype 0 (generic binary), data
	binary.LittleEndian.PutUint32(out, uint32(len(doc)))
	return byte(bson.TypeBinary), append(out, doc...), nil
}

// UnmarshalBSONValue implements bson.ValueUnmarshaler.
func (w *InputWords) UnmarshalBSONValue(t byte, data []byte) error {
	switch bson.Type(t) {
	case bson.TypeBinary:
		if len(data) < 5 || int(binary.LittleEndian.Uint32(data)) != len(data)-5 {
			return errors.New("input words: malformed binary value")
		}
		var d inputWordsDoc
		if err := bson.Unmarshal(data[5:], &d); err != nil {
			return fmt.Errorf("input words: %w", err)
		}
		*w = d.W
		return nil
	case bson.TypeArray:
		var ws []InputWord
		if err := bson.UnmarshalValue(bson.TypeArray, data, &ws); err != nil {
			return fmt.Errorf("input words: %w", err)
		}
		*w = ws
		return nil
	default:
		return fmt.Errorf("input words: unexpected BSON type %v", bson.Type(t))
	}
}

// RequestBody is the rendered chat-completions body of the Request of the same id. Bodies are kept apart from
// requests: they are large and read once, by the build, while request documents are read and written at
// every step.
type RequestBody struct {
	ID   string `bson:"_id"`
	Body string `bson:"body"`
}

// Request target kinds.
const (
	TargetDefinition = "definition"
	TargetWord       = "word"
)

// Usage is billed token usage (from OpenAI's answer) or an estimate.
type Usage struct {
	InputTokens  int64 `bson:"input_tokens" json:"input_tokens"`
	CachedTokens int64 `bson:"cached_tokens" json:"cached_tokens"`
	OutputTokens int64 `bson:"output_tokens" json:"output_tokens"`
}

func (u Usage) Add(o Usage) Usage {
	return Usage{u.InputTokens + o.InputTokens, u.CachedTokens + o.CachedTokens, u.OutputTokens + o.OutputTokens}
}

// AttemptError records why one attempt failed.
type AttemptError struct {
	Attempt int       `bson:"attempt" json:"attempt"`
	BatchID string    `bson:"batch_id,omitempty" json:"batch_id,omitempty"`
	Reason  string    `bson:"reason" json:"reason"`
	At      time.Time `bson:"at" json:"at"`
}

// Request is one piece of synthesis: a target (one definition, or one word with its definitions) and the
// components asked of it. Its _id is a deterministic key of (target, components, prompt version, model, mode),
// so the same piece is never requested twice.
type Request struct {
	ID            string          `bson:"_id" json:"id"`
	JobIDs        []string        `bson:"job_ids" json:"job_ids"`
	Kind          string          `bson:"kind" json:"kind"`
	WordID        bson.ObjectID   `bson:"word_id" json:"word_id"`
	Word          string          `bson:"word" json:"word"`
	DefinitionIDs []bson.ObjectID `bson:"definition_ids" json:"definition_ids"`
	Components    []string        `bson:"components" json:"components"`
	Mode          string          `bson:"mode" json:"mode"`
	PromptVersion string          `bson:"prompt_version" json:"prompt_version"`
	Model         string          `bson:"model" json:"model"`
	Force         bool            `bson:"force" json:"force"`
	State         RequestState    `bson:"state" json:"state"`
	Attempts      int             `bson:"attempts" json:"attempts"`
	BatchID       string          `bson:"batch_id,omitempty" json:"batch_id,omitempty"`
	// The rendered chat-completions body is the RequestBody of the same id, stored so that the estimate, the
	// builder and a retry all send exactly the same bytes; BodyHash keys the result cache.
	BodyHash       string         `bson:"body_hash" json:"body_hash"`
	BodyBytes      int            `bson:"body_bytes" json:"body_bytes"`
	InputTokensEst int64          `bson:"input_tokens_est" json:"input_tokens_est"`
	Usage          Usage          `bson:"usage" json:"usage"`
	CostUSD        float64        `bson:"cost_usd" json:"cost_usd"`
	Result         string         `bson:"result,omitempty" json:"result,omitempty"`
	CachedFrom     string         `bson:"cached_from,omitempty" json:"cached_from,omitempty"`
	Applied        bool           `bson:"applied" json:"applied"`
	LastError      string         `bson:"last_error,omitempty" json:"last_error,omitempty"`
	Errors         []AttemptError `bson:"errors,omitempty" json:"errors,omitempty"`
	CreatedAt      time.Time      `bson:"created_at" json:"created_at"`
	UpdatedAt      time.Time      `bson:"updated_at" json:"updated_at"`
	SettledAt      *time.Time     `bson:"settled_at,omitempty" json:"settled_at,omitempty"`
	AppliedAt      *time.Time     `bson:"applied_at,omitempty" json:"applied_at,omitempty"`
}

// OpenAI statuses that end a batch.
func IsTerminalStatus(s string) bool {
	switch s {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// StatusRank orders OpenAI statuses so that status writes are monotonic.
func StatusRank(s string) int {
	switch s {
	case "validating":
		return 1
	case "in_progress":
		return 2
	case "finalizing", "cancelling":
		return 3
	case "completed", "failed", "expired", "cancelled":
		return 4
	}
	return 0
}

type StatusChange struct {
	Status string    `bson:"status" json:"status"`
	At     time.Time `bson:"at" json:"at"`
}

type BatchError struct {
	Code    string `bson:"code" json:"code"`
	Message string `bson:"message" json:"message"`
	Line    int64  `bson:"line,omitempty" json:"line,omitempty"`
	Param   string `bson:"param,omitempty" json:"param,omitempty"`
}

type RequestCounts struct {
	Total     int64 `bson:"total" json:"total"`
	Completed int64 `bson:"completed" json:"completed"`
	Failed    int64 `bson:"failed" json:"failed"`
}

// ApplyCounts is what applying a batch did to its requests.
type ApplyCounts struct {
	Succeeded int `bson:"succeeded" json:"succeeded"`
	Retried   int `bson:"retried" json:"retried"`
	Dead      int `bson:"dead" json:"dead"`
}

// Batch is one OpenAI batch (one input file, one model).
type Batch struct {
	ID             string         `bson:"_id" json:"id"`
	Model          string         `bson:"model" json:"model"`
	State          BatchState     `bson:"state" json:"state"`
	OpenAIStatus   string         `bson:"openai_status" json:"openai_status"`
	StatusRank     int            `bson:"status_rank" json:"-"`
	OpenAIBatchID  string         `bson:"openai_batch_id,omitempty" json:"openai_batch_id,omitempty"`
	InputFileID    string         `bson:"input_file_id,omitempty" json:"input_file_id,omitempty"`
	OutputFileID   string         `bson:"output_file_id,omitempty" json:"output_file_id,omitempty"`
	ErrorFileID    string         `bson:"error_file_id,omitempty" json:"error_file_id,omitempty"`
	RequestCount   int            `bson:"request_count" json:"request_count"`
	Bytes          int64          `bson:"bytes" json:"bytes"`
	InputTokensEst int64          `bson:"input_tokens_est" json:"input_tokens_est"`
	RequestCounts  RequestCounts  `bson:"request_counts" json:"request_counts"`
	Usage          Usage          `bson:"usage" json:"usage"`
	CostUSD        float64        `bson:"cost_usd" json:"cost_usd"`
	ImmediateUSD   float64        `bson:"immediate_usd" json:"immediate_usd"`
	PollCount      int            `bson:"poll_count" json:"poll_count"`
	CreateAttempts int            `bson:"create_attempts" json:"create_attempts"`
	UploadAttempts int            `bson:"upload_attempts" json:"upload_attempts"`
	StatusHistory  []StatusChange `bson:"status_history" json:"status_history"`
	Errors         []BatchError   `bson:"errors,omitempty" json:"errors,omitempty"`
	Applied        ApplyCounts    `bson:"applied" json:"applied"`
	LeaseOwner     string         `bson:"lease_owner,omitempty" json:"-"`
	LeaseUntil     time.Time      `bson:"lease_until" json:"-"`
	CancelAsked    bool           `bson:"cancel_requested,omitempty" json:"cancel_requested,omitempty"`
	CreatedAt      time.Time      `bson:"created_at" json:"created_at"`
	UpdatedAt      time.Time      `bson:"updated_at" json:"updated_at"`
	SubmittedAt    *time.Time     `bson:"submitted_at,omitempty" json:"submitted_at,omitempty"`
	TerminalAt     *time.Time     `bson:"terminal_at,omitempty" json:"terminal_at,omitempty"`
	AppliedAt      *time.Time     `bson:"applied_at,omitempty" json:"applied_at,omitempty"`
}
