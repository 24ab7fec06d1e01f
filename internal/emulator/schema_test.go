package emulator_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/emulator"
)

func TestValidateAgainstSchema(t *testing.T) {
	t.Parallel()
	schema := enrichmentSchema()
	valid := map[string]any{
		"cefr_level": "B2", "register": nil, "frequency_band": 3,
		"etymology": map[string]any{"origin": "Old Italian banca", "first_attested": 1400},
		"definitions": []any{map[string]any{
			"definition_id": "d1", "synonyms": []any{"shore"}, "domain": "geography", "usage_note": nil,
			"examples": []any{
				map[string]any{"sentence": "We sat on the bank.", "difficulty": "easy"},
				map[string]any{"sentence": "The bank eroded.", "difficulty": "medium"},
			},
		}},
	}
	if err := emulator.ValidateAgainstSchema(schema, valid); err != nil {
		t.Fatalf("valid value rejected: %v", err)
	}
	raw, _ := json.Marshal(valid)
	if err := emulator.ValidateAgainstSchema(json.RawMessage(mustJSON(t, schema)), raw); err != nil {
		t.Fatalf("valid raw JSON rejected: %v", err)
	}

	tests := []struct {
		name   string
		mutate func(v map[string]any)
		want   string
	}{
		{"missing required", func(v map[string]any) { delete(v, "cefr_level") }, `$: missing required property "cefr_level"`},
		{"enum", func(v map[string]any) { v["cefr_level"] = "D1" }, `$.cefr_level: value "D1" is not one of the enum values`},
		{"type", func(v map[string]any) { v["frequency_band"] = "3" }, "$.frequency_band: expected type integer, got string"},
		{"integer", func(v map[string]any) { v["frequency_band"] = 2.5 }, "expected type integer, got number"},
		{"maximum", func(v map[string]any) { v["frequency_band"] = 9 }, "$.frequency_band: 9 is above the maximum 5"},
		{"additional property", func(v map[string]any) { v["extra"] = true }, `property "extra" is not allowed`},
		{"anyOf", func(v map[string]any) { v["etymology"] = "latin" }, "$.etymology: value matches none of anyOf"},
		{"minItems", func(v map[string]any) { v["definitions"] = []any{} }, "fewer than minItems 1"},
		{"nested enum", func(v map[string]any) {
			v["definitions"].([]any)[0].(map[string]any)["examples"].([]any)[1].(map[string]any)["difficulty"] = "trivial"
		}, "$.definitions[0].examples[1].difficulty: value"},
	}
	for _, tt := range tests {
		v := map[string]any{}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		tt.mutate(v)
		err := emulator.ValidateAgainstSchema(schema, v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}

	// Go values that marshal to JSON are accepted too.
	type example struct {
		Sentence   string `json:"sentence"`
		Difficulty string `json:"difficulty"`
	}
	exSchema := schema["properties"].(map[string]any)["definitions"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)["examples"].(map[string]any)["items"]
	if err := emulator.ValidateAgainstSchema(exSchema, example{"x", "hard"}); err != nil {
		t.Errorf("struct value rejected: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (emulator.Config{}).Validate(); err != nil {
		t.Errorf("zero config invalid: %v", err)
	}
	cfg := emulator.Config{
		ValidatingFor: -time.Second,
		TokenBudget:   map[string]int64{"gpt-4o-mini": -1},
		Faults:        emulator.Faults{Rate429: 0.8, Rate500: 0.5, RateRefusal: 2},
	}
	err := cfg.Validate()
	for _, want := range []string{"ValidatingFor", `TokenBudget["gpt-4o-mini"]`, "Rate429+Rate500+Rate503", "RateRefusal must be in 0..1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
