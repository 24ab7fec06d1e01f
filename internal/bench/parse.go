package bench

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
)

// ParseLineOnePass is the result-line parser proposed for openaibatch.ParseLine (docs/benchmarks.md,
// "Profile"). ParseLine decodes a line in two steps: the envelope with the response body kept as a
// json.RawMessage (validated, scanned and copied), then that body into the completion (validated and scanned
// again): about four passes over the body, which is nearly all of the line. This decodes the envelope and
// the completion in one json.Unmarshal, and falls back to ParseLine whenever that fails, so that malformed
// lines and unreadable bodies are judged exactly as before. It returns the same Result for every line.
func ParseLineOnePass(b []byte) (openaibatch.Result, error) {
	var l onePassLine
	if err := json.Unmarshal(b, &l); err != nil {
		return openaibatch.ParseLine(b)
	}
	if l.CustomID == "" {
		return openaibatch.Result{}, fmt.Errorf("result line without custom_id")
	}
	r := openaibatch.Result{CustomID: l.CustomID}
	if l.Error != nil && l.Response == nil {
		r.Reason = fmt.Sprintf("%s: %s", l.Error.Code, l.Error.Message)
		return r, nil
	}
	if l.Response == nil {
		r.Reason = "result line with neither response nor error"
		return r, nil
	}
	r.StatusCode = l.Response.StatusCode
	c := &l.Response.Body
	r.Usage = store.Usage{InputTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.PromptTokensDetails.CachedTokens, OutputTokens: c.Usage.CompletionTokens}
	if r.StatusCode != 200 {
		if c.Error != nil {
			code := c.Error.Code
			if code == "" {
				code = c.Error.Type
			}
			if code == "" {
				code = "error"
			}
			r.Reason = fmt.Sprintf("status %d: %s: %s", r.StatusCode, code, c.Error.Message)
		} else {
			r.Reason = fmt.Sprintf("status %d", r.StatusCode)
		}
		return r, nil
	}
	if len(c.Choices) == 0 {
		r.Reason = "no choices in the completion"
		return r, nil
	}
	ch := c.Choices[0]
	r.FinishReason = ch.FinishReason
	switch {
	case ch.Message.Refusal != nil && *ch.Message.Refusal != "":
		r.Reason = "refusal: " + *ch.Message.Refusal
	case ch.FinishReason == "length":
		r.Reason = "cut off (finish_reason length)"
	case ch.FinishReason == "content_filter":
		r.Reason = "content_filter"
	case ch.Message.Content == nil || *ch.Message.Content == "":
		r.Reason = "empty content"
	default:
		r.OK = true
		r.Content = *ch.Message.Content
	}
	return r, nil
}

// onePassLine is openaibatch's outputLine with the response body decoded in place.
type onePassLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int        `json:"status_code"`
		RequestID  string     `json:"request_id"`
		Body       completion `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// completion is openaibatch's, field for field.
type completion struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens        int64 `json:"prompt_tokens"`
		CompletionTokens    int64 `json:"completion_tokens"`
		PromptTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

// Parallel runs f(0..n-1) on GOMAXPROCS goroutines and returns when all are done: the proposed shape of
// apply's per-chunk parsing and validation, which are pure functions of each line.
func Parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
