package openaibatch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/floridify/batchsynth/internal/parallel"
	"github.com/floridify/batchsynth/internal/store"
)

// Limits of one input file (OpenAI's: 50,000 lines, 200 MB).
const (
	MaxLines = 50_000
	MaxBytes = 200 << 20
)

// Endpoint is the only endpoint batchsynth batches.
const Endpoint = "/v1/chat/completions"

var linePrefix = []byte(`{"custom_id":`)
var lineMiddle = []byte(`,"method":"POST","url":"` + Endpoint + `","body":`)

// AppendLine appends one input line (with its newline) to dst. body must be a JSON object; it is copied
// verbatim, so the bytes uploaded are the bytes that were estimated.
func AppendLine(dst []byte, customID string, body []byte) []byte {
	dst = append(dst, linePrefix...)
	dst = strconv.AppendQuote(dst, customID)
	dst = append(dst, lineMiddle...)
	dst = append(dst, body...)
	return append(dst, '}', '\n')
}

// InputLine is the decoded form of an input line (used by tests and the estimate).
type InputLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// Splitter decides where an input file must end.
type Splitter struct {
	MaxLines int
	MaxBytes int64
	lines    int
	bytes    int64
}

// Fits reports whether a line of n bytes still fits; if so it is counted.
func (s *Splitter) Fits(n int) bool {
	maxL, maxB := s.MaxLines, s.MaxBytes
	if maxL <= 0 || maxL > MaxLines {
		maxL = MaxLines
	}
	if maxB <= 0 || maxB > MaxBytes {
		maxB = MaxBytes
	}
	if s.lines+1 > maxL || s.bytes+int64(n) > maxB {
		return false
	}
	s.lines++
	s.bytes += int64(n)
	return true
}

// Lines and Bytes report what has been counted.
func (s *Splitter) Lines() int   { return s.lines }
func (s *Splitter) Bytes() int64 { return s.bytes }

// Result is one output or error line, judged.
type Result struct {
	CustomID string
	// OK is true for a 200 whose message has content and finished normally.
	OK           bool
	Content      string
	FinishReason string
	StatusCode   int
	Usage        store.Usage
	// Reason says why a line failed (HTTP status and error code, refusal, cut off, batch_expired, ...).
	Reason string
}

type outputLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int            `json:"status_code"`
		RequestID  string         `json:"request_id"`
		Body       jsontext.Value `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

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

// lenient keeps encoding/json's tolerance for the envelope of a result line (invalid UTF-8 replaced, key
// case ignored, duplicate keys allowed): a line OpenAI wrote should never be lost to our parser's strictness.
// The model's answer inside it is judged strictly by synthesis.Decode. go-json-experiment/json (the upstream of
// encoding/json/v2) decodes in one pass where encoding/json validates the whole line first.
var lenient = jsonv2.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true), jsonv2.MatchCaseInsensitiveNames(true))

// ParseLine judges one result line. Failures of the request itself (4xx, refusal, length, batch_expired) come
// back as a Result with OK false and a Reason; an error means the line itself is malformed.
func ParseLine(b []byte) (Result, error) {
	// One pass over the line for the common case; a line whose body does not fit the completion shape is
	// read again in two steps, so that it still yields its custom_id and a reason.
	var one struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int        `json:"status_code"`
			Body       completion `json:"body"`
		} `json:"response"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := jsonv2.Unmarshal(b, &one, lenient); err == nil && one.CustomID != "" && one.Response != nil && one.Error == nil {
		return judge(Result{CustomID: one.CustomID, StatusCode: one.Response.StatusCode}, &one.Response.Body), nil
	}
	var l outputLine
	if err := jsonv2.Unmarshal(b, &l, lenient); err != nil {
		return Result{}, fmt.Errorf("not a JSON result line: %v", err)
	}
	if l.CustomID == "" {
		return Result{}, errors.New("result line without custom_id")
	}
	r := Result{CustomID: l.CustomID}
	if l.Error != nil && l.Response == nil {
		r.Reason = fmt.Sprintf("%s: %s", l.Error.Code, l.Error.Message)
		return r, nil
	}
	if l.Response == nil {
		r.Reason = "result line with neither response nor error"
		return r, nil
	}
	r.StatusCode = l.Response.StatusCode
	var c completion
	if len(l.Response.Body) > 0 {
		if err := jsonv2.Unmarshal(l.Response.Body, &c, lenient); err != nil {
			r.Reason = fmt.Sprintf("status %d with an unreadable body: %v", r.StatusCode, err)
			return r, nil
		}
	}
	return judge(r, &c), nil
}

// judge fills r (custom_id and status code set) from the completion body c.
func judge(r Result, c *completion) Result {
	r.Usage = store.Usage{InputTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.PromptTokensDetails.CachedTokens, OutputTokens: c.Usage.CompletionTokens}
	if r.StatusCode != 200 {
		if c.Error != nil {
			r.Reason = fmt.Sprintf("status %d: %s: %s", r.StatusCode, firstNonEmpty(c.Error.Code, c.Error.Type), c.Error.Message)
		} else {
			r.Reason = fmt.Sprintf("status %d", r.StatusCode)
		}
		return r
	}
	if len(c.Choices) == 0 {
		r.Reason = "no choices in the completion"
		return r
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
	return r
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return "error"
}

// Reader streams result lines from a file of any size.
type Reader struct {
	sc   *bufio.Scanner
	line int
}

// NewReader reads r line by line; single lines may be up to 64 MiB.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256<<10), 64<<20)
	return &Reader{sc: sc}
}

// Next returns the next non-blank line's Result, its 1-based line number, and io.EOF at the end. A malformed
// line returns its error with the line number; reading may go on.
func (r *Reader) Next() (Result, int, error) {
	b, line, err := r.next()
	if err != nil {
		return Result{}, line, err
	}
	res, err := ParseLine(b)
	if err != nil {
		return Result{}, line, fmt.Errorf("line %d: %w", line, err)
	}
	return res, line, nil
}

// linesInto reads up to n more non-blank lines, for ParseLines: copies of the lines, all in arena (reused
// from its start and returned, grown if need be, for the next call), and their 1-based numbers. At the end
// it returns what it read (perhaps nothing) and io.EOF.
func (r *Reader) linesInto(arena []byte, n int) (lines [][]byte, numbers []int, _ []byte, err error) {
	arena = arena[:0]
	var ends []int
	for len(ends) < n {
		b, line, err := r.next()
		if err != nil {
			return split(arena, ends), numbers, arena, err
		}
		arena = append(arena, b...)
		ends, numbers = append(ends, len(arena)), append(numbers, line)
	}
	return split(arena, ends), numbers, arena, nil
}

// split cuts arena at ends; each piece's capacity stops at its end, so appending to one cannot overwrite the
// next.
func split(arena []byte, ends []int) [][]byte {
	if len(ends) == 0 {
		return nil
	}
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = arena[start:end:end]
		start = end
	}
	return lines
}

// Chunk is up to n parsed lines of a result file, from Reader.Chunks: Results[i] and Errs[i] are those of the
// line numbered Numbers[i].
type Chunk struct {
	Results []Result
	Errs    []error
	Numbers []int
}

// Chunks reads and parses the rest of the file n lines at a time, one chunk ahead of the caller: while the
// caller works on one chunk (apply writes it to MongoDB), the next is read and parsed (ParseLines, on every
// core). It yields each non-empty chunk with a nil error, and a read error other than io.EOF last, with the
// lines read before it. At most two chunks are in memory. Breaking out of the loop stops the read-ahead
// once its current chunk is read; the Reader is not used after Chunks returns.
func (r *Reader) Chunks(n int) iter.Seq2[Chunk, error] {
	type item struct {
		c   Chunk
		err error
	}
	return func(yield func(Chunk, error) bool) {
		items := make(chan item)
		done := make(chan struct{})
		go func() {
			defer close(items)
			// One buffer for every chunk's lines: a Result shares no memory with its line (the decoder copies
			// strings out), so once a chunk is parsed its lines are done with.
			var arena []byte
			for {
				var lines [][]byte
				var numbers []int
				var err error
				lines, numbers, arena, err = r.linesInto(arena, n)
				c := Chunk{Numbers: numbers}
				c.Results, c.Errs = ParseLines(lines)
				if errors.Is(err, io.EOF) {
					err = nil
					if len(lines) == 0 {
						return
					}
				}
				select {
				case items <- item{c, err}:
				case <-done:
					return
				}
				if err != nil || len(lines) < n {
					return
				}
			}
		}()
		defer func() {
			close(done)
			for range items { // wait for the read-ahead, so nothing reads r after this returns
			}
		}()
		for it := range items {
			if !yield(it.c, it.err) || it.err != nil {
				return
			}
		}
	}
}

// next returns the next non-blank line (valid until the next call) and its number.
func (r *Reader) next() ([]byte, int, error) {
	for r.sc.Scan() {
		r.line++
		if b := bytes.TrimSpace(r.sc.Bytes()); len(b) > 0 {
			return b, r.line, nil
		}
	}
	if err := r.sc.Err(); err != nil {
		return nil, r.line, fmt.Errorf("error reading results after line %d: %w", r.line, err)
	}
	return nil, r.line, io.EOF
}

// ParseLines parses lines on every core (ParseLine is pure): results[i] and errs[i] are lines[i]'s.
func ParseLines(lines [][]byte) (results []Result, errs []error) {
	results, errs = make([]Result, len(lines)), make([]error, len(lines))
	parallel.For(len(lines), func(i int) { results[i], errs[i] = ParseLine(lines[i]) })
	return results, errs
}
