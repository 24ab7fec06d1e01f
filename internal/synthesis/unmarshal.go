package synthesis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/floridify/batchsynth/internal/parallel"
)

// unmarshal decodes model answers. It uses go-json-experiment/json (the upstream of Go's encoding/json/v2)
// rather than encoding/json: apply decodes every answer twice (the object, then each component's value),
// and encoding/json validates each input in a full pass before decoding it, which made answer decoding
// half of apply's CPU (docs/benchmarks.md, "Profile"). v2 is also stricter where a model could slip: it
// rejects duplicate keys and invalid UTF-8 and matches key names exactly.
func unmarshal(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }

// Answer is one model answer to decode with DecodeAll: what Decode takes, and what it returned.
type Answer struct {
	Kind, Word string
	NDefs      int
	Components []string
	Content    string

	Parsed *Parsed
	Err    error
}

// DecodeAll decodes answers on every core. Decode is pure and is most of apply's CPU, so a chunk of a
// result file validates about GOMAXPROCS times faster than one answer after the other.
func DecodeAll(answers []Answer) {
	parallel.For(len(answers), func(i int) {
		a := &answers[i]
		a.Parsed, a.Err = Decode(a.Kind, a.Word, a.NDefs, a.Components, a.Content)
	})
}

// splitter walks the top of a JSON value with a pooled jsontext.Decoder and hands out its members' raw
// bytes as sub-slices of the input. Decode used to unmarshal an answer into map[string]jsontext.Value and its
// senses into []map[string]jsontext.Value, copying every value twice before each component parsed its own.
type splitter struct {
	rd  bytes.Reader
	dec *jsontext.Decoder
}

var splitters = sync.Pool{New: func() any { return &splitter{dec: jsontext.NewDecoder(bytes.NewReader(nil))} }}

// fields returns the members of the JSON object b by name, sharing b's memory. null has no members. As
// unmarshalling into a map would, it rejects anything else but an object, duplicate names, invalid UTF-8
// and trailing data.
func fields(b []byte) (map[string][]byte, error) {
	sp, kind, err := start(b)
	defer splitters.Put(sp)
	if err != nil {
		return nil, err
	}
	d := sp.dec
	var out map[string][]byte
	switch kind {
	case 'n':
	case '{':
		out = make(map[string][]byte, 12)
		for d.PeekKind() != '}' {
			tok, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			name := tok.String() // before the next read voids the token
			v, err := d.ReadValue()
			if err != nil {
				return nil, err
			}
			end := int(d.InputOffset())
			out[name] = b[end-len(v) : end : end]
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("want an object, got %s", kind)
	}
	return out, end(d)
}

// elements returns the elements of the JSON array b, sharing b's memory. null has none.
func elements(b []byte) ([][]byte, error) {
	sp, kind, err := start(b)
	defer splitters.Put(sp)
	if err != nil {
		return nil, err
	}
	d := sp.dec
	var out [][]byte
	switch kind {
	case 'n':
	case '[':
		for d.PeekKind() != ']' {
			v, err := d.ReadValue()
			if err != nil {
				return nil, err
			}
			end := int(d.InputOffset())
			out = append(out, b[end-len(v):end:end])
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("want an array, got %s", kind)
	}
	return out, end(d)
}

// start takes a pooled decoder, points it at b and reads b's first token, returning its kind. The caller
// puts the splitter back.
func start(b []byte) (*splitter, jsontext.Kind, error) {
	sp := splitters.Get().(*splitter)
	sp.rd.Reset(b)
	sp.dec.Reset(&sp.rd)
	tok, err := sp.dec.ReadToken()
	if err != nil {
		return sp, 0, err
	}
	return sp, tok.Kind(), nil
}

// end checks that nothing but whitespace follows the value.
func end(d *jsontext.Decoder) error {
	if _, err := d.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the top-level value")
		}
		return err
	}
	return nil
}
