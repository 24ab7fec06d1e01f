package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"strings"
	"unicode/utf8"
)

// chatRequest is the part of a chat-completions request body the emulator reads.
type chatRequest struct {
	model    string
	messages []byte // compact JSON of "messages"; nil when absent or invalid
	word     string // from a "word: X" line of the last user message, else "word"
	format   string // "", "text", "json_object" or "json_schema"
	schema   any    // decoded response_format.json_schema.schema, nil when absent
	stream   bool
	bad      *apiError // non-nil: the request gets a 400
}

// promptTokens estimates the input tokens: ceil(len(messages JSON)/4).
func (c *chatRequest) promptTokens() int64 {
	return ceilDiv4(len(c.messages))
}

func ceilDiv4(n int) int64 {
	if n <= 0 {
		return 0
	}
	return int64((n + 3) / 4)
}

func badRequest(msg, param, code string) *apiError {
	e := newAPIError("invalid_request_error", msg, param, code)
	return &e
}

// parseChatRequest reads a chat-completions body. Problems that OpenAI answers
// with a per-request 400 are reported in bad, never as a Go error.
func parseChatRequest(body []byte) chatRequest {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return chatRequest{bad: badRequest("We could not parse the JSON body of your request. The body must be a JSON object.", "", "")}
	}
	return parseChatFields(fields, nil)
}

// schemaCache shares decoded schemas between the lines of a batch, keyed by
// their raw JSON; decoded schemas are only read.
type schemaCache map[string]any

// parseChatFields is parseChatRequest for a body already split into fields.
// schemas may be nil.
func parseChatFields(fields map[string]json.RawMessage, schemas schemaCache) chatRequest {
	var req chatRequest
	if raw, ok := fields["messages"]; ok {
		var msgs []json.RawMessage
		if json.Unmarshal(raw, &msgs) == nil && len(msgs) > 0 {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) == nil {
				req.messages = buf.Bytes()
			}
		}
		req.word = extractWord(raw)
	}
	if req.word == "" {
		req.word = "word"
	}
	if raw, ok := fields["stream"]; ok {
		_ = json.Unmarshal(raw, &req.stream)
	}
	if raw, ok := fields["model"]; ok {
		_ = json.Unmarshal(raw, &req.model)
	}
	switch {
	case req.model == "":
		req.bad = badRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
		return req
	case fields["messages"] == nil:
		req.bad = badRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
		return req
	case req.messages == nil:
		req.bad = badRequest("Invalid 'messages': expected a non-empty array of messages.", "messages", "invalid_value")
		return req
	}
	if raw, ok := fields["response_format"]; ok && string(raw) != "null" {
		req.parseResponseFormat(raw, schemas)
	}
	return req
}

func (c *chatRequest) parseResponseFormat(raw json.RawMessage, schemas schemaCache) {
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		c.bad = badRequest("Invalid 'response_format': expected an object.", "response_format", "invalid_type")
		return
	}
	switch rf.Type {
	case "text", "json_object":
		c.format = rf.Type
	case "json_schema":
		c.format = rf.Type
		if rf.JSONSchema == nil {
			c.bad = badRequest("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema", "missing_required_parameter")
			return
		}
		if rf.JSONSchema.Name == "" {
			c.bad = badRequest("Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name", "missing_required_parameter")
			return
		}
		raw := rf.JSONSchema.Schema
		if len(raw) == 0 || string(raw) == "null" {
			return
		}
		if cached, ok := schemas[string(raw)]; ok {
			c.schema = cached
			return
		}
		if err := json.Unmarshal(raw, &c.schema); err != nil {
			c.bad = badRequest("Invalid 'response_format.json_schema.schema': expected a JSON schema object.", "response_format.json_schema.schema", "invalid_value")
			return
		}
		if schemas != nil {
			schemas[string(raw)] = c.schema
		}
	default:
		c.bad = badRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", rf.Type),
			"response_format.type", "invalid_value")
	}
}

var wordLine = regexp.MustCompile(`(?im)^\s*word\s*:\s*(.+?)\s*$`)

// extractWord finds a "word: X" line in the last user message.
func extractWord(rawMessages json.RawMessage) string {
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(rawMessages, &msgs) != nil {
		return ""
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		var text string
		if json.Unmarshal(msgs[i].Content, &text) != nil {
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			_ = json.Unmarshal(msgs[i].Content, &parts)
			var sb strings.Builder
			for _, p := range parts {
				sb.WriteString(p.Text)
				sb.WriteByte('\n')
			}
			text = sb.String()
		}
		if m := wordLine.FindStringSubmatch(text); m != nil {
			return strings.Trim(m[1], `"'`)
		}
		return ""
	}
	return ""
}

// chooseOutcome picks a line's outcome from the draw u in [0,1).
func chooseOutcome(req *chatRequest, f Faults, u float64, zeroSuccess bool) LineOutcome {
	if req.bad != nil {
		return OutcomeBadRequest
	}
	if zeroSuccess {
		return OutcomeHTTP4xx
	}
	acc := f.RateLine4xx
	if u < acc {
		return OutcomeHTTP4xx
	}
	if acc += f.RateRefusal; u < acc {
		return OutcomeRefusal
	}
	if acc += f.RateLength; u < acc {
		return OutcomeLength
	}
	if acc += f.RateInvalidSchema; u < acc && req.schema != nil {
		return OutcomeInvalidSchema
	}
	return OutcomeSuccess
}

// Wire shapes of a chat.completion.
type chatCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []chatChoice    `json:"choices"`
	Usage             completionUsage `json:"usage"`
	ServiceTier       string          `json:"service_tier"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
	Logprobs     *struct{}   `json:"logprobs"`
}

type chatMessage struct {
	Role        string  `json:"role"`
	Content     *string `json:"content"`
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type completionUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

// synthResult is the answer to one chat-completions request.
type synthResult struct {
	outcome          LineOutcome
	status           int
	body             any // chatCompletion or errorEnvelope
	promptTokens     int64
	completionTokens int64
}

const refusalText = "I'm sorry, but I can't help with that request. (synthetic refusal from the batchsynth emulator)"

// synthesize answers req with outcome. content draws the synthetic content (so it
// depends only on what seeded it); ids draws the ids.
func synthesize(req *chatRequest, outcome LineOutcome, content, ids *rand.Rand, created int64) synthResult {
	res := synthResult{outcome: outcome, status: 200}
	switch outcome {
	case OutcomeBadRequest:
		res.status = 400
		res.body = errorEnvelope{Error: *req.bad}
		return res
	case OutcomeHTTP4xx:
		res.status = 400
		res.body = errorEnvelope{Error: newAPIError("invalid_request_error",
			"Synthetic per-request error injected by the batchsynth emulator.", "", "synthetic_error")}
		return res
	}

	msg := chatMessage{Role: "assistant", Annotations: []any{}}
	finish := "stop"
	var text string
	switch outcome {
	case OutcomeRefusal:
		r := refusalText
		msg.Refusal = &r
		text = r
	case OutcomeLength:
		full := req.content(content, false)
		text = cutInHalf(full)
		msg.Content = &text
		finish = "length"
	case OutcomeInvalidSchema:
		text = req.content(content, true)
		msg.Content = &text
	default:
		text = req.content(content, false)
		msg.Content = &text
	}
	res.promptTokens = req.promptTokens()
	res.completionTokens = max(1, ceilDiv4(len(text)))
	cc := chatCompletion{
		ID:                "chatcmpl-" + randString(ids, 29),
		Object:            "chat.completion",
		Created:           created,
		Model:             req.model,
		Choices:           []chatChoice{{Index: 0, Message: msg, FinishReason: finish}},
		ServiceTier:       "default",
		SystemFingerprint: SystemFingerprint,
	}
	cc.Usage.PromptTokens = res.promptTokens
	cc.Usage.CompletionTokens = res.completionTokens
	cc.Usage.TotalTokens = res.promptTokens + res.completionTokens
	res.body = cc
	return res
}

// content returns the synthetic message content for req: JSON valid for its
// schema (or, with broken, valid JSON that breaks it), a small JSON object for
// json_object, or a short text.
func (c *chatRequest) content(rng *rand.Rand, broken bool) string {
	switch {
	case c.schema != nil:
		v := generateValue(c.schema, c.word, rng)
		if broken {
			v = breakValue(c.schema, v, rng)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return `{}`
		}
		return string(b)
	case c.format == "json_object" || c.format == "json_schema":
		b, _ := json.Marshal(map[string]string{"answer": fmt.Sprintf("synthetic answer for %q", c.word)})
		return string(b)
	default:
		return fmt.Sprintf("Synthetic answer from the batchsynth emulator for %q.", c.word)
	}
}

// cutInHalf returns the first half of s, cut at a rune boundary.
func cutInHalf(s string) string {
	i := len(s) / 2
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// seeded returns a generator determined by seed and parts.
func seeded(seed int64, parts ...string) *rand.Rand {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}
