// Package input parses word submissions: plain text (one word per line, blank lines and # comments ignored)
// or JSONL (one {"word", "definitions": [{"part_of_speech", "text"}]} object per line). Every rejected line
// gets an error naming its line and field; the valid rest goes on.
package input

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/floridify/batchsynth/internal/store"
)

// Limits on one submitted word.
const (
	MaxWordLen       = 200
	MaxDefinitionLen = 5000
	MaxDefinitions   = 100
	MaxLineBytes     = 1 << 20
)

// Format of a submission.
const (
	FormatText  = "text"
	FormatJSONL = "jsonl"
)

// Parsed is a parsed submission.
type Parsed struct {
	Format string
	Words  []store.InputWord
	Errors []store.InputError
	Lines  int
}

// ErrEmpty is returned when a submission holds no word at all.
var ErrEmpty = errors.New("the submission holds no word")

// Parse reads r. The format is JSONL when the first meaningful line starts with '{', text otherwise.
func Parse(r io.Reader) (*Parsed, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	skipBOM(br)
	p := &Parsed{}
	seen := map[string]int{}
	lineNo := 0
	for {
		line, tooLong, err := readLine(br)
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("error reading line %d: %w", lineNo+1, err)
		}
		lineNo++
		if tooLong {
			p.Errors = append(p.Errors, store.InputError{Line: lineNo, Message: fmt.Sprintf("line is longer than %d bytes", MaxLineBytes)})
			continue
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		if p.Format == "" {
			p.Format = FormatText
			if trimmed[0] == '{' {
				p.Format = FormatJSONL
			}
		}
		var w store.InputWord
		var ierr *store.InputError
		if p.Format == FormatJSONL {
			w, ierr = parseJSONLine(trimmed)
		} else {
			w, ierr = parseTextLine(trimmed)
		}
		if ierr != nil {
			ierr.Line = lineNo
			p.Errors = append(p.Errors, *ierr)
			continue
		}
		w.Line = lineNo
		key := strings.ToLower(w.Word) + "\x00" + w.Language
		if first, dup := seen[key]; dup && len(w.Definitions) == 0 {
			p.Errors = append(p.Errors, store.InputError{Line: lineNo, Word: w.Word, Message: fmt.Sprintf("duplicate of line %d; ignored", first)})
			continue
		}
		seen[key] = lineNo
		p.Words = append(p.Words, w)
	}
	p.Lines = lineNo
	if p.Format == "" {
		p.Format = FormatText
	}
	if len(p.Words) == 0 {
		if len(p.Errors) > 0 {
			return p, fmt.Errorf("%w: %d line(s) rejected, first: line %d: %s", ErrEmpty, len(p.Errors), p.Errors[0].Line, p.Errors[0].Message)
		}
		return p, ErrEmpty
	}
	return p, nil
}

// utf8BOM is what Windows editors put at the start of a "UTF-8" file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// SkipBOM returns r without one leading UTF-8 byte order mark. Left in, it hides the '{' that marks a JSONL
// file (its definitions were dropped as text) and sticks to the first word.
func SkipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	skipBOM(br)
	return br
}

// skipBOM drops a leading BOM from br. A read error while peeking stays in br for the caller's next read.
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
}

// readLine returns one line without its newline; a line over MaxLineBytes is skipped to its end and reported.
func readLine(br *bufio.Reader) ([]byte, bool, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			// Drain the rest of the line without keeping it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, true, err
			}
			return []byte{'x'}, true, nil
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), false, err
	}
}

// ValidateWord checks one headword: valid UTF-8, no control characters, 1..MaxWordLen characters.
// Underscores, spaces, quotes and non-Latin letters are allowed: they are real headwords.
func ValidateWord(w string) (string, error) {
	if !utf8.ValidString(w) {
		return "", errors.New("not valid UTF-8")
	}
	w = strings.Join(strings.Fields(w), " ")
	if w == "" {
		return "", errors.New("empty word")
	}
	if n := utf8.RuneCountInString(w); n > MaxWordLen {
		return "", fmt.Errorf("word is %d characters long (at most %d)", n, MaxWordLen)
	}
	for _, r := range w {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", fmt.Errorf("word contains control or invalid character %U", r)
		}
	}
	return w, nil
}

func parseTextLine(line []byte) (store.InputWord, *store.InputError) {
	w, err := ValidateWord(string(line))
	if err != nil {
		return store.InputWord{}, &store.InputError{Field: "word", Message: err.Error()}
	}
	return store.InputWord{Word: w}, nil
}

// wordObject is one word as JSON gives it: a JSONL line, or an object in the API's "words". Pointers tell a
// missing field from an empty one.
type wordObject struct {
	Word        *string `json:"word"`
	Language    string  `json:"language"`
	Definitions []struct {
		PartOfSpeech *string `json:"part_of_speech"`
		Text         *string `json:"text"`
	} `json:"definitions"`
}

// Languages Floridify stores.
var languages = map[string]bool{"en": true, "fr": true, "es": true, "de": true, "it": true}

func parseJSONLine(line []byte) (store.InputWord, *store.InputError) {
	return DecodeWord(line)
}

// DecodeWord decodes and validates one word object ({"word", "language", "definitions"}; unknown fields are
// refused). It is the one check of a submitted word object, for a JSONL line and for the HTTP API's body alike:
// the field its error names is relative to the object ("word", "definitions[0].text"), empty when the object
// as a whole is malformed.
func DecodeWord(raw []byte) (store.InputWord, *store.InputError) {
	if !utf8.Valid(raw) {
		return store.InputWord{}, &store.InputError{Message: "not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var jw wordObject
	if err := dec.Decode(&jw); err != nil {
		return store.InputWord{}, &store.InputError{Message: "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return store.InputWord{}, &store.InputError{Message: "more than one JSON value on the line"}
	}
	if jw.Word == nil {
		return store.InputWord{}, &store.InputError{Field: "word", Message: "missing"}
	}
	w, err := ValidateWord(*jw.Word)
	if err != nil {
		return store.InputWord{}, &store.InputError{Field: "word", Word: *jw.Word, Message: err.Error()}
	}
	out := store.InputWord{Word: w, Language: jw.Language}
	if jw.Language != "" && !languages[jw.Language] {
		return store.InputWord{}, &store.InputError{Field: "language", Word: w, Message: fmt.Sprintf("%q is not one of en, fr, es, de, it", jw.Language)}
	}
	if len(jw.Definitions) > MaxDefinitions {
		return store.InputWord{}, &store.InputError{Field: "definitions", Word: w, Message: fmt.Sprintf("%d definitions (at most %d)", len(jw.Definitions), MaxDefinitions)}
	}
	for i, d := range jw.Definitions {
		field := fmt.Sprintf("definitions[%d]", i)
		if d.PartOfSpeech == nil || strings.TrimSpace(*d.PartOfSpeech) == "" {
			return store.InputWord{}, &store.InputError{Field: field + ".part_of_speech", Word: w, Message: "missing or empty"}
		}
		if d.Text == nil || strings.TrimSpace(*d.Text) == "" {
			return store.InputWord{}, &store.InputError{Field: field + ".text", Word: w, Message: "missing or empty"}
		}
		text := strings.TrimSpace(*d.Text)
		if n := utf8.RuneCountInString(text); n > MaxDefinitionLen {
			return store.InputWord{}, &store.InputError{Field: field + ".text", Word: w, Message: fmt.Sprintf("%d characters (at most %d)", n, MaxDefinitionLen)}
		}
		out.Definitions = append(out.Definitions, store.InputDefinition{
			PartOfSpeech: strings.ToLower(strings.TrimSpace(*d.PartOfSpeech)), Text: text,
		})
	}
	return out, nil
}
