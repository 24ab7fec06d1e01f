package synthesis

import (
	"strings"
	"testing"

	"github.com/floridify/batchsynth/internal/store"
)

// Decode reads an answer's structure as strictly as unmarshalling it into maps did: anything but an object
// (or a list of objects for senses), duplicate keys, invalid UTF-8 and trailing data fail the answer.
func TestDecodeStructure(t *testing.T) {
	t.Parallel()
	comps := []string{"cefr_level"}
	def := func(content string) error {
		_, err := Decode(store.TargetDefinition, "bank", 1, comps, content)
		return err
	}
	word := func(n int, content string) error {
		_, err := Decode(store.TargetWord, "bank", n, comps, content)
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for success
	}{
		{"definition", def(` {"cefr_level":"B1", "extra": {"a":[1,2]}} `), ""},
		{"two senses", word(2, `{"senses":[{"cefr_level":"B1"},{"cefr_level":"C2"}]}`), ""},
		{"array", def(`["B1"]`), "not a JSON object"},
		{"string", def(`"B1"`), "not a JSON object"},
		{"null", def(`null`), `missing "cefr_level"`},
		{"empty", def(``), "not a JSON object"},
		{"duplicate key", def(`{"cefr_level":"B1","cefr_level":"B2"}`), "duplicate"},
		{"invalid UTF-8", def("{\"cefr_level\":\"B1\",\"x\":\"\xff\"}"), "UTF-8"},
		{"trailing data", def(`{"cefr_level":"B1"} {}`), "not a JSON object"},
		{"truncated", def(`{"cefr_level":"B1"`), "not a JSON object"},
		{"senses missing", word(1, `{"x":1}`), "senses: want a list of objects"},
		{"senses not a list", word(1, `{"senses":{"cefr_level":"B1"}}`), "senses: want a list of objects"},
		{"sense not an object", word(2, `{"senses":[{"cefr_level":"B1"},3]}`), "senses: want a list of objects"},
		{"sense with duplicate key", word(1, `{"senses":[{"cefr_level":"B1","cefr_level":"B1"}]}`), "duplicate"},
		{"wrong count", word(3, `{"senses":[{"cefr_level":"B1"}]}`), "want 3 entries, got 1"},
		{"null senses", word(1, `{"senses":null}`), "want 1 entries, got 0"},
		{"bad value", def(`{"cefr_level":"Z9"}`), "Z9"},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
}
