package openaibatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAppendLineRoundTrip(t *testing.T) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"word: \"quote\" \u00e9"}]}`)
	line := AppendLine(nil, "rabc-2", body)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("want one line ending in a newline, got %q", line)
	}
	var in InputLine
	if err := json.Unmarshal(line, &in); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, line)
	}
	if in.CustomID != "rabc-2" || in.Method != "POST" || in.URL != Endpoint {
		t.Fatalf("decoded %+v", in)
	}
	if !bytes.Equal(in.Body, body) {
		t.Fatalf("body changed in transit:\n got %s\nwant %s", in.Body, body)
	}
}

func TestSplitter(t *testing.T) {
	s := Splitter{MaxLines: 3, MaxBytes: 100}
	for i := 0; i < 3; i++ {
		if !s.Fits(10) {
			t.Fatalf("line %d should fit", i)
		}
	}
	if s.Fits(10) {
		t.Fatal("a fourth line must not fit a 3-line file")
	}
	s = Splitter{MaxLines: 10, MaxBytes: 25}
	if !s.Fits(10) || !s.Fits(10) || s.Fits(10) {
		t.Fatal("want two 10-byte lines in 25 bytes, not three")
	}
	if s.Lines() != 2 || s.Bytes() != 20 {
		t.Fatalf("counted %d lines, %d bytes", s.Lines(), s.Bytes())
	}
	// Zero or excessive limits fall back to OpenAI's.
	s = Splitter{MaxLines: 1_000_000}
	for i := 0; i < MaxLines; i++ {
		if !s.Fits(1) {
			t.Fatalf("line %d should fit under OpenAI's limit", i)
		}
	}
	if s.Fits(1) {
		t.Fatal("line 50,001 must not fit")
	}
	s = Splitter{}
	if !s.Fits(MaxBytes) || s.Fits(1) {
		t.Fatal("want the 200 MB limit honoured")
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		ok     bool
		reason string
		in     int64
	}{
		{"success", `{"id":"batch_req_1","custom_id":"r1-1","response":{"status_code":200,"request_id":"req_1","body":{"choices":[{"message":{"content":"{\"a\":1}","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}},"error":null}`, true, "", 12},
		{"4xx in error file", `{"id":"x","custom_id":"r1-1","response":{"status_code":400,"request_id":"req","body":{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}},"error":null}`, false, "status 400: context_length_exceeded: bad", 0},
		{"expired", `{"id":"x","custom_id":"r1-1","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`, false, "batch_expired: This request could not be executed before the completion window expired.", 0},
		{"refusal", `{"id":"x","custom_id":"r1-1","response":{"status_code":200,"body":{"choices":[{"message":{"content":null,"refusal":"no"},"finish_reason":"stop"}]}},"error":null}`, false, "refusal: no", 0},
		{"cut off", `{"id":"x","custom_id":"r1-1","response":{"status_code":200,"body":{"choices":[{"message":{"content":"{\"a\":"},"finish_reason":"length"}]}},"error":null}`, false, "cut off (finish_reason length)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseLine([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != tt.ok || r.Reason != tt.reason || r.Usage.InputTokens != tt.in || r.CustomID != "r1-1" {
				t.Fatalf("got %+v", r)
			}
		})
	}
	for _, bad := range []string{`not json`, `{"response":null}`, `[1,2]`} {
		if _, err := ParseLine([]byte(bad)); err == nil {
			t.Fatalf("%q: want an error", bad)
		}
	}
}

func TestReaderReportsLineNumbers(t *testing.T) {
	data := `{"custom_id":"a-1","response":null,"error":{"code":"x","message":"y"}}

garbage
{"custom_id":"b-1","response":null,"error":{"code":"x","message":"y"}}
`
	rd := NewReader(strings.NewReader(data))
	var ids []string
	var badLines []int
	for {
		r, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			badLines = append(badLines, line)
			continue
		}
		ids = append(ids, r.CustomID)
	}
	if strings.Join(ids, ",") != "a-1,b-1" || len(badLines) != 1 || badLines[0] != 3 {
		t.Fatalf("ids %v, bad lines %v", ids, badLines)
	}
}
