package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// fieldError is a request error naming the field at fault.
type fieldError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{status: http.StatusBadRequest, code: "invalid_field", field: field, msg: fmt.Sprintf(format, args...)}
}

func writeFieldError(w http.ResponseWriter, err error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		writeError(w, fe.status, fe.code, fe.field, fe.msg)
		return
	}
	writeError(w, http.StatusBadRequest, "invalid_request", "", err.Error())
}

// jobBody is the JSON body of POST /v1/jobs (and /batch/synthesize and /v1/estimate). Words stay raw so
// that each can be judged on its own and named by index; the rest of a submission goes on without it.
type jobBody struct {
	Words      []json.RawMessage `json:"words"`
	Components json.RawMessage   `json:"components"`
	Model      string            `json:"model"`
	Mode       string            `json:"mode"`
	Priority   string            `json:"priority"`
	Force      bool              `json:"force"`
	Source     string            `json:"source"`
}

// readSubmission decodes a submission: a JSON body, or (for large lists from a shell) a plain-text or
// JSONL body with the options in the query string. It does no database work: validation is per word in
// memory, and pipeline.Submit stores the words in chunks.
func (s *Server) readSubmission(w http.ResponseWriter, r *http.Request) (*pipeline.Submission, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	sub, opts, err := s.decodeSubmission(r.Body, ct, r.URL.Query())
	if err != nil {
		return nil, err
	}
	if err := s.applyOptions(sub, opts); err != nil {
		return nil, err
	}
	return sub, nil
}

// decodeSubmission reads the words and the raw options of a body of media type ct (q holds the options of a
// text or JSONL body). It needs no service, so that the body formats can be tested alone.
func (s *Server) decodeSubmission(body io.Reader, ct string, q url.Values) (*pipeline.Submission, jobBody, error) {
	var (
		sub  = &pipeline.Submission{}
		opts jobBody
	)
	// Windows editors start "UTF-8" files with a BOM; encoding/json refuses it and input.Parse would take it
	// for text. One is dropped for every format.
	body = input.SkipBOM(body)
	switch ct {
	case "", "application/json", "application/x-www-form-urlencoded":
		// The last is curl's default for -d; a JSON body sent that way is still JSON.
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts); err != nil {
			return nil, opts, jsonError(err)
		}
		if dec.More() {
			return nil, opts, &fieldError{status: http.StatusBadRequest, code: "malformed_json", msg: "more than one JSON value in the body"}
		}
		if len(opts.Words) == 0 {
			return nil, opts, badField("words", "missing or empty: give at least one word")
		}
		if len(opts.Words) > s.MaxWords {
			return nil, opts, badField("words", "%d words (at most %d per submission; split the list)", len(opts.Words), s.MaxWords)
		}
		sub.Words, sub.Errors = parseWords(opts.Words)
	case "text/plain", "application/x-ndjson", "application/jsonl":
		for k := range q {
			switch k {
			case "components", "model", "mode", "priority", "force", "source":
			default:
				return nil, opts, badField(k, "unknown query parameter (want components, model, mode, priority, force, source)")
			}
		}
		if c := q.Get("components"); c != "" {
			opts.Components, _ = json.Marshal(c)
		}
		opts.Model, opts.Mode, opts.Priority, opts.Source = q.Get("model"), q.Get("mode"), q.Get("priority"), q.Get("source")
		if f := q.Get("force"); f != "" {
			b, err := strconv.ParseBool(f)
			if err != nil {
				return nil, opts, badField("force", "want true or false, got %q", f)
			}
			opts.Force = b
		}
		parsed, err := input.Parse(body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, opts, tooLarge(s.MaxBodyBytes)
		}
		if err != nil {
			if parsed != nil && len(parsed.Errors) > 0 {
				e := parsed.Errors[0]
				return nil, opts, &fieldError{status: http.StatusBadRequest, code: "no_valid_word", field: "line " + strconv.Itoa(e.Line), msg: err.Error()}
			}
			return nil, opts, &fieldError{status: http.StatusBadRequest, code: "no_valid_word", field: "body", msg: err.Error()}
		}
		if len(parsed.Words) > s.MaxWords {
			return nil, opts, badField("body", "%d words (at most %d per submission; split the list)", len(parsed.Words), s.MaxWords)
		}
		sub.Words, sub.Errors = parsed.Words, parsed.Errors
	default:
		return nil, opts, &fieldError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", field: "Content-Type",
			msg: fmt.Sprintf("%q: send application/json, or text/plain / application/x-ndjson with options in the query string", ct)}
	}
	if sub.Errors == nil {
		sub.Errors = []store.InputError{}
	}
	if len(sub.Words) == 0 {
		e := sub.Errors[0]
		return nil, opts, &fieldError{status: http.StatusBadRequest, code: "no_valid_word", field: e.Field,
			msg: fmt.Sprintf("no valid word in the submission; %d rejected, first: %s", len(sub.Errors), e.Message)}
	}
	return sub, opts, nil
}

// applyOptions validates and fills the options common to every body format.
func (s *Server) applyOptions(sub *pipeline.Submission, o jobBody) error {
	spec, err := componentSpec(o.Components)
	if err != nil {
		return err
	}
	if sub.Components, err = synthesis.ParseComponents(spec); err != nil {
		return badField("components", "%v", err)
	}
	sub.Model, sub.Mode, sub.Priority = o.Model, o.Mode, o.Priority
	// The submit rule's own check, here so that a refused submission is answered before its Idempotency-Key
	// is taken (and an estimate refuses what a submission would).
	if err := s.Deps.CheckSubmission(sub); err != nil {
		var ie *pipeline.InvalidInputError
		if errors.As(err, &ie) {
			return badField(ie.Field, "%s", ie.Message)
		}
		return err
	}
	sub.Source = strings.TrimSpace(o.Source)
	if sub.Source == "" {
		sub.Source = "api"
	}
	if !utf8.ValidString(sub.Source) || len(sub.Source) > 200 {
		return badField("source", "at most 200 bytes of UTF-8")
	}
	sub.Force = o.Force
	return nil
}

// componentSpec accepts components as a list of names or as one string ("default", "all", "a,b").
func componentSpec(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "default", nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return one, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", badField("components", "want a list of component names or a string such as \"default\"")
	}
	if len(list) == 0 {
		return "default", nil
	}
	for i, c := range list {
		if strings.Contains(c, ",") {
			return "", badField(fmt.Sprintf("components[%d]", i), "one name per entry, got %q", c)
		}
	}
	return strings.Join(list, ","), nil
}

// parseWords judges each word on its own: rejected ones are reported by field (words[i]...), the rest go on.
// Duplicate bare headwords are dropped as input.Parse drops them.
func parseWords(raws []json.RawMessage) ([]store.InputWord, []store.InputError) {
	words := make([]store.InputWord, 0, len(raws))
	var errs []store.InputError
	seen := make(map[string]int, len(raws))
	for i, raw := range raws {
		field := "words[" + strconv.Itoa(i) + "]"
		w, ierr := parseWord(raw, field)
		if ierr != nil {
			errs = append(errs, *ierr)
			continue
		}
		key := strings.ToLower(w.Word) + "\x00" + w.Language
		if first, dup := seen[key]; dup && len(w.Definitions) == 0 {
			errs = append(errs, store.InputError{Field: field, Word: w.Word, Message: fmt.Sprintf("duplicate of words[%d]; ignored", first)})
			continue
		}
		seen[key] = i
		words = append(words, w)
	}
	return words, errs
}

func parseWord(raw json.RawMessage, field string) (store.InputWord, *store.InputError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return store.InputWord{}, &store.InputError{Field: field, Message: "malformed string: " + err.Error()}
		}
		w, err := input.ValidateWord(s)
		if err != nil {
			return store.InputWord{}, &store.InputError{Field: field, Word: s, Message: err.Error()}
		}
		return store.InputWord{Word: w}, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return store.InputWord{}, &store.InputError{Field: field, Message: "want a headword string or an object {\"word\", \"language\", \"definitions\"}"}
	}
	w, ierr := input.DecodeWord(raw)
	if ierr != nil {
		if ierr.Field == "" {
			ierr.Field = field
		} else {
			ierr.Field = field + "." + ierr.Field
		}
		return store.InputWord{}, ierr
	}
	return w, nil
}

// jsonError names the field of a JSON decoding error where encoding/json tells it.
func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.As(err, &ute):
		return badField(ute.Field, "want %s, got JSON %s", ute.Type.String(), ute.Value)
	case errors.As(err, &se):
		return &fieldError{status: http.StatusBadRequest, code: "malformed_json", msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.Is(err, io.EOF):
		return &fieldError{status: http.StatusBadRequest, code: "malformed_json", msg: "empty body: want a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &fieldError{status: http.StatusBadRequest, code: "malformed_json", msg: "the JSON body ends early"}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return &fieldError{status: http.StatusBadRequest, code: "unknown_field", field: name, msg: "unknown field (see /openapi.yaml)"}
	}
	return &fieldError{status: http.StatusBadRequest, code: "malformed_json", msg: err.Error()}
}

func tooLarge(limit int64) error {
	return &fieldError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", field: "body",
		msg: fmt.Sprintf("the body is over %d bytes; split the submission", limit)}
}
