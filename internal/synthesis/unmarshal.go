package synthesis

import (
	jsonv2 "github.com/go-json-experiment/json"

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
