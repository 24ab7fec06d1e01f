package openaibatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// The result-line parser reads files OpenAI writes; a line it misjudges is a request applied that should
// not be, or paid for again. Seeds live in testdata/fuzz/<FuzzName>/. CI runs, for example:
//
//	go test -run='^$' -fuzz='^FuzzParseLine$' -fuzztime=10s ./internal/openaibatch/

// FuzzParseLine feeds arbitrary bytes to ParseLine: it never panics, and what it returns is consistent.
func FuzzParseLine(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line)
		if err != nil {
			if r != (Result{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, r)
			}
			return
		}
		checkResult(t, r)
		// The Reader judges the same line the same way, with or without surrounding blank lines.
		if bytes.ContainsAny(line, "\n\r") || len(bytes.TrimSpace(line)) != len(line) {
			return
		}
		rd := NewReader(bytes.NewReader(append(append([]byte("\n  \n"), line...), '\n')))
		got, n, err := rd.Next()
		if err != nil || n != 3 || got != r {
			t.Fatalf("Reader: %+v line %d err %v; ParseLine: %+v", got, n, err, r)
		}
		if _, _, err := rd.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("want EOF after the one line, got %v", err)
		}
	})
}

// checkResult holds for every Result ParseLine returns without an error.
func checkResult(t *testing.T, r Result) {
	t.Helper()
	if r.CustomID == "" {
		t.Fatalf("result without custom_id: %+v", r)
	}
	if r.OK {
		switch {
		case r.StatusCode != 200:
			t.Fatalf("OK with status %d", r.StatusCode)
		case r.Content == "":
			t.Fatal("OK without content")
		case r.Reason != "":
			t.Fatalf("OK with a failure reason %q", r.Reason)
		case r.FinishReason == "length" || r.FinishReason == "content_filter":
			t.Fatalf("OK although finish_reason is %q", r.FinishReason)
		}
	} else {
		if r.Reason == "" {
			t.Fatalf("failed line without a reason: %+v", r)
		}
		if r.Content != "" {
			t.Fatalf("failed line carries content to apply: %+v", r)
		}
	}
}

// FuzzParseLineFields builds well-formed result lines from fuzzed fields and checks that ParseLine reads
// back exactly what they say: the verdict (success only for a 200 with content that finished normally and
// was not refused), the custom_id, the content and the billed usage.
func FuzzParseLineFields(f *testing.F) {
	f.Add("r0abc-1", 200, "{\"synonyms\":[\"x\"]}", "", "stop", int64(120), int64(40), int64(0), false)
	f.Add("r0abc-2", 200, "", "I can't help with that.", "stop", int64(120), int64(5), int64(0), false)
	f.Add("r0abc-3", 200, "{\"synonyms\":[", "", "length", int64(120), int64(400), int64(64), false)
	f.Add("r0abc-4", 400, "", "", "", int64(0), int64(0), int64(0), false)
	f.Add("r0abc-5", 0, "", "", "", int64(0), int64(0), int64(0), true)
	f.Add("r0abc-6", 200, "{}", "", "content_filter", int64(1), int64(1), int64(0), false)
	f.Add("r0abc-7", 500, "", "", "", int64(0), int64(0), int64(0), false)
	f.Add("\u00e9\"\\\n", 200, "\u0000", "", "tool_calls", int64(1)<<53, int64(-1), int64(0), false)
	f.Fuzz(func(t *testing.T, customID string, status int, content, refusal, finish string, prompt, completion, cached int64, expired bool) {
		if customID == "" {
			t.Skip()
		}
		var line map[string]any
		if expired {
			line = map[string]any{"id": "batch_req_1", "custom_id": customID, "response": nil,
				"error": map[string]any{"code": "batch_expired", "message": "not run"}}
		} else {
			msg := map[string]any{"role": "assistant", "content": nilIfEmpty(content), "refusal": nilIfEmpty(refusal)}
			body := map[string]any{"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
				"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "prompt_tokens_details": map[string]any{"cached_tokens": cached}}}
			if status != 200 {
				body = map[string]any{"error": map[string]any{"message": "bad", "type": "invalid_request_error", "param": nil, "code": "x"}}
			}
			line = map[string]any{"id": "batch_req_1", "custom_id": customID, "error": nil,
				"response": map[string]any{"status_code": status, "request_id": "req_1", "body": body}}
		}
		b, err := json.Marshal(line)
		if err != nil {
			t.Skip() // strings json cannot carry
		}
		r, err := ParseLine(b)
		if err != nil {
			t.Fatalf("well-formed line %s: %v", b, err)
		}
		checkResult(t, r)
		// json.Marshal replaces invalid UTF-8; compare with what the line actually says.
		var back struct {
			CustomID string `json:"custom_id"`
		}
		_ = json.Unmarshal(b, &back)
		if r.CustomID != back.CustomID {
			t.Fatalf("custom_id %q read back as %q", back.CustomID, r.CustomID)
		}
		wantOK := !expired && status == 200 && refusal == "" && content != "" && finish != "length" && finish != "content_filter"
		if r.OK != wantOK {
			t.Fatalf("line %s: OK %v, want %v (reason %q)", b, r.OK, wantOK, r.Reason)
		}
		if wantOK {
			var c struct {
				Choices []struct {
					Message struct {
						Content string `json:"content"`
					} `json:"message"`
				} `json:"choices"`
			}
			_ = json.Unmarshal(mustBody(t, b), &c)
			if r.Content != c.Choices[0].Message.Content {
				t.Fatalf("content %q read back as %q", c.Choices[0].Message.Content, r.Content)
			}
		}
		if !expired && status == 200 && (r.Usage.InputTokens != prompt || r.Usage.OutputTokens != completion || r.Usage.CachedTokens != cached) {
			t.Fatalf("usage %d/%d/%d read back as %+v", prompt, completion, cached, r.Usage)
		}
		if (expired || status != 200) && r.Usage != (Result{}).Usage {
			t.Fatalf("a line that did not run bills %+v", r.Usage)
		}
		if expired && !strings.HasPrefix(r.Reason, "batch_expired") {
			t.Fatalf("expired line's reason %q", r.Reason)
		}
	})
}

// FuzzReader feeds arbitrary files to the Reader: it never panics, numbers lines from 1 upwards, and
// accounts for every non-blank line exactly once (a result or a per-line error); reading in chunks, as
// apply does, gives the same lines and results.
func FuzzReader(f *testing.F) {
	f.Add([]byte("{\"custom_id\":\"a-1\",\"response\":null,\"error\":{\"code\":\"x\",\"message\":\"y\"}}\n\ngarbage\n"))
	f.Add([]byte("\r\n\r\n{\"custom_id\":\"b-1\"}\r\n"))
	f.Add([]byte{0xff, 0xfe, 0x00, '\n', '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data))
		last, seen := 0, 0
		type read struct {
			r    Result
			line int
			ok   bool
		}
		var byNext []read
		for {
			r, n, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && strings.HasPrefix(err.Error(), "error reading") {
				return // a line past the scanner's limit; not reachable with fuzz-sized inputs
			}
			if n <= last {
				t.Fatalf("line numbers went from %d to %d", last, n)
			}
			last = n
			seen++
			if err == nil {
				checkResult(t, r)
			}
			byNext = append(byNext, read{r, n, err == nil})
		}
		// Apply reads in chunks (Chunks: a chunk of lines, then ParseLines on every core, one chunk ahead): the same
		// lines, numbers and results.
		var byChunk []read
		for c, err := range NewReader(bytes.NewReader(data)).Chunks(3) {
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Results) == 0 || len(c.Results) > 3 {
				t.Fatalf("a chunk of %d lines, want 1 to 3", len(c.Results))
			}
			for i := range c.Results {
				byChunk = append(byChunk, read{c.Results[i], c.Numbers[i], c.Errs[i] == nil})
			}
		}
		if !reflect.DeepEqual(byNext, byChunk) {
			t.Fatalf("Next read %+v, Chunks %+v", byNext, byChunk)
		}
		want := 0
		for l := range strings.Lines(string(data)) {
			if strings.TrimSpace(l) != "" {
				want++
			}
		}
		// bufio.ScanLines splits on \n only and drops one trailing \r; a lone \r inside a line stays.
		if seen != want {
			t.Fatalf("%d non-blank lines, %d accounted for", want, seen)
		}
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func mustBody(t *testing.T, line []byte) []byte {
	t.Helper()
	var l struct {
		Response struct {
			Body json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		t.Fatal(err)
	}
	return l.Response.Body
}
