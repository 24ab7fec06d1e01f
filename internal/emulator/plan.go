package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The endpoint the emulator runs; the other documented endpoints are accepted
// at create and fail at validation.
const endpointChatCompletions = "/v1/chat/completions"

var batchEndpoints = []string{
	"/v1/responses", endpointChatCompletions, "/v1/embeddings", "/v1/completions",
	"/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos",
}

// maxValidationErrors caps errors.data of a failed batch.
const maxValidationErrors = 100

// plan is everything decided about a batch when it is created: the validation
// result, the batch-level faults and, for a valid file, each line's result.
// It is immutable once built.
type plan struct {
	errs   []BatchError // non-empty: the batch fails at validation
	model  string
	tokens int64 // estimated input tokens, enqueued against the budget
	lines  []*preparedLine

	// Prefix sums over lines in processing order: successes (status 200) and
	// their prompt and completion tokens.
	succPrefix   []int
	promptPrefix []int64
	complPrefix  []int64

	failSynthetic bool
	expire        bool
	zeroSuccess   bool
	shuffle       bool
}

// preparedLine is one input line's result, written when the line "runs".
type preparedLine struct {
	customID         string
	id               string // batch_req_…
	outcome          LineOutcome
	status           int
	promptTokens     int64 // billed only when status is 200
	completionTokens int64
	json             []byte // the output or error file line
}

type prepareParams struct {
	batchID  string
	endpoint string
	data     []byte
	faults   Faults
	seed     int64
	maxLines int
	maxBytes int64
	runStart time.Time     // estimated start of in_progress, for "created"
	runFor   time.Duration // estimated in_progress duration
}

type parsedLine struct {
	num      int64 // 1-based line number in the file
	customID string
	body     map[string]json.RawMessage
}

// prepare validates a batch input file and precomputes every line's result. It
// runs without the server lock.
func prepare(p prepareParams) *plan {
	pl := &plan{}
	batchRNG := seeded(p.seed, p.batchID, "batch")
	pl.failSynthetic = batchRNG.Float64() < p.faults.RateBatchFail
	pl.expire = batchRNG.Float64() < p.faults.RateExpire
	pl.zeroSuccess = batchRNG.Float64() < p.faults.RateZeroSuccess
	pl.shuffle = p.faults.Shuffle

	parsed, errs := parseInput(p, pl)
	if len(errs) > 0 {
		pl.errs = errs
		return pl
	}
	if p.endpoint != endpointChatCompletions {
		pl.errs = []BatchError{{
			Code:    "unsupported_endpoint",
			Message: fmt.Sprintf("The batchsynth emulator only runs %s batches, not %s.", endpointChatCompletions, p.endpoint),
			Param:   "endpoint",
		}}
		return pl
	}

	n := len(parsed)
	pl.lines = make([]*preparedLine, n)
	pl.succPrefix = make([]int, n+1)
	pl.promptPrefix = make([]int64, n+1)
	pl.complPrefix = make([]int64, n+1)
	schemas := schemaCache{}
	for i, line := range parsed {
		req := parseChatFields(line.body, schemas)
		pl.tokens += req.promptTokens()
		lineRNG := seeded(p.seed, p.batchID, "line", line.customID)
		outcome := chooseOutcome(&req, p.faults, lineRNG.Float64(), pl.zeroSuccess)
		created := p.runStart
		if n > 0 {
			created = created.Add(p.runFor * time.Duration(i) / time.Duration(n))
		}
		res := synthesize(&req, outcome, seeded(p.seed, "content", line.customID), lineRNG, created.Unix())
		pr := &preparedLine{
			customID:         line.customID,
			id:               "batch_req_" + randHex(lineRNG, 32),
			outcome:          outcome,
			status:           res.status,
			promptTokens:     res.promptTokens,
			completionTokens: res.completionTokens,
		}
		out := resultLine{
			ID:       pr.id,
			CustomID: line.customID,
			Response: &lineResponse{StatusCode: res.status, RequestID: "req_" + randHex(lineRNG, 32), Body: res.body},
		}
		pr.json, _ = json.Marshal(out)
		pl.lines[i] = pr

		pl.succPrefix[i+1] = pl.succPrefix[i]
		pl.promptPrefix[i+1] = pl.promptPrefix[i]
		pl.complPrefix[i+1] = pl.complPrefix[i]
		if res.status == 200 {
			pl.succPrefix[i+1]++
			pl.promptPrefix[i+1] += res.promptTokens
			pl.complPrefix[i+1] += res.completionTokens
		}
	}
	return pl
}

// parseInput checks the file and each line's envelope. It sets pl.model.
func parseInput(p prepareParams, pl *plan) ([]parsedLine, []BatchError) {
	if int64(len(p.data)) > p.maxBytes {
		return nil, []BatchError{{
			Code:    "file_too_large",
			Message: fmt.Sprintf("The input file is %d bytes, larger than the maximum of %d bytes for a batch.", len(p.data), p.maxBytes),
		}}
	}
	type rawLine struct {
		num  int64
		text []byte
	}
	var raws []rawLine
	for i, text := range bytes.Split(p.data, []byte("\n")) {
		text = bytes.TrimSpace(text)
		if len(text) > 0 {
			raws = append(raws, rawLine{num: int64(i + 1), text: text})
		}
	}
	if len(raws) == 0 {
		return nil, []BatchError{{Code: "empty_file", Message: "The input file is empty. A batch needs at least one request."}}
	}
	if len(raws) > p.maxLines {
		return nil, []BatchError{{
			Code:    "too_many_tasks",
			Message: fmt.Sprintf("The input file contains %s requests, more than the limit of %s requests per batch.", commas(int64(len(raws))), commas(int64(p.maxLines))),
		}}
	}

	var errs []BatchError
	add := func(e BatchError) {
		if len(errs) < maxValidationErrors {
			errs = append(errs, e)
		}
	}
	seen := make(map[string]int64, len(raws))
	out := make([]parsedLine, 0, len(raws))
	for _, rl := range raws {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(rl.text, &env); err != nil || env == nil {
			add(BatchError{Code: "invalid_json_line", Line: rl.num,
				Message: "This line is not parseable as valid JSON."})
			continue
		}
		lineErr := func(code, param, msg string) {
			add(BatchError{Code: code, Line: rl.num, Param: param, Message: msg})
		}
		ok := true
		var customID, method, url string
		var body map[string]json.RawMessage
		for _, f := range []struct {
			name string
			dst  any
		}{{"custom_id", &customID}, {"method", &method}, {"url", &url}, {"body", &body}} {
			raw, present := env[f.name]
			if !present || string(raw) == "null" {
				lineErr("missing_required_parameter", f.name, fmt.Sprintf("Missing required parameter: '%s'.", f.name))
				ok = false
				continue
			}
			if err := json.Unmarshal(raw, f.dst); err != nil {
				lineErr("invalid_value", f.name, fmt.Sprintf("Invalid type for '%s'.", f.name))
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case customID == "":
			lineErr("invalid_value", "custom_id", "The custom_id must be a non-empty string.")
			continue
		case method != "POST":
			lineErr("invalid_value", "method", fmt.Sprintf("Invalid value: '%s'. The only supported method is 'POST'.", method))
			continue
		case url != p.endpoint:
			lineErr("url_mismatch", "url", fmt.Sprintf("The url '%s' of this request does not match the batch endpoint '%s'.", url, p.endpoint))
			continue
		}
		if first, dup := seen[customID]; dup {
			lineErr("duplicate_custom_id", "custom_id", fmt.Sprintf(
				"The custom_id for this request is a duplicate of another request (line %d). The custom_id parameter must be unique for each request in a batch.", first))
			continue
		}
		seen[customID] = rl.num
		var model string
		if raw, ok := body["model"]; ok {
			_ = json.Unmarshal(raw, &model)
		}
		if model != "" {
			if pl.model == "" {
				pl.model = model
			} else if model != pl.model {
				lineErr("model_mismatch", "body.model", fmt.Sprintf(
					"The model '%s' of this request differs from the model '%s' of the other requests. All requests in a batch must use the same model.", model, pl.model))
				continue
			}
		}
		out = append(out, parsedLine{num: rl.num, customID: customID, body: body})
	}
	return out, errs
}

// resultLine is a line of an output or error file.
type resultLine struct {
	ID       string        `json:"id"`
	CustomID string        `json:"custom_id"`
	Response *lineResponse `json:"response"`
	Error    *lineError    `json:"error"`
}

type lineResponse struct {
	StatusCode int    `json:"status_code"`
	RequestID  string `json:"request_id"`
	Body       any    `json:"body"`
}

type lineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// commas formats n with thousands separators, as OpenAI's limit messages do.
func commas(n int64) string {
	s := fmt.Sprintf("%d", n)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}
