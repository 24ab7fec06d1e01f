package synthesis

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/floridify/batchsynth/internal/store"
)

// PromptVersion is part of every request key: changing a prompt or schema must bump it, so that new
// requests are not confused with answers to the old ones.
const PromptVersion = "v1"

// Level says whether a component is asked per definition or per word.
type Level int

const (
	DefinitionLevel Level = iota
	WordLevel
)

// Sense is what a component sees of one definition.
type Sense struct {
	Word         string
	Language     string
	PartOfSpeech string
	Text         string
	Counts       Counts
}

// Component is one row of the catalog.
type Component struct {
	Name  string
	Level Level
	// Rule is one line of the (static) developer message; counts are given per sense in the user message.
	Rule string
	// Schema is the strict JSON schema of this component's value.
	Schema map[string]any
	// CountOf returns the number of items asked for (0 for scalar components); shown in the user message.
	CountOf func(Counts) int
	// Missing reports whether the definition lacks this component (Floridify's "field is empty" rule).
	Missing func(d *store.Definition) bool
	// Parse validates and normalises the model's value. An error fails the attempt, naming the reason;
	// nothing of that request is written.
	Parse func(raw json.RawMessage, s Sense) (any, error)
	// ApplyDef adds the writes of a parsed definition-level value.
	ApplyDef func(v any, def DefRef, w *Writes)
	// OutputTokens estimates the completion tokens of this component's value for one sense.
	OutputTokens func(Counts) int
}

// catalog is the table. Order matters only for prompt text, which is static for a given component set.
var catalog = []*Component{
	{
		Name:  "synonyms",
		Level: DefinitionLevel,
		Rule:  "synonyms: up to N words or short phrases with this sense and part of speech, most common first; never the headword.",
		Schema: map[string]any{
			"type": "array", "items": map[string]any{"type": "string"},
		},
		CountOf: func(c Counts) int { return c.Synonyms },
		Missing: func(d *store.Definition) bool { return len(d.Synonyms) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			return parseWordList(raw, s.Word, 50)
		},
		ApplyDef: func(v any, def DefRef, w *Writes) {
			w.setDef(def.ID, "synonyms", v.([]string))
		},
		OutputTokens: func(c Counts) int { return 4 + 3*c.Synonyms },
	},
	{
		Name:  "examples",
		Level: DefinitionLevel,
		Rule:  "examples: N natural, contemporary sentences of 12-25 words using the headword in this sense.",
		Schema: map[string]any{
			"type": "array", "items": map[string]any{"type": "string"},
		},
		CountOf: func(c Counts) int { return c.Examples },
		Missing: func(d *store.Definition) bool { return len(d.ExampleIDs) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []string
			if err := json.Unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("examples: want a list of sentences: %v", err)
			}
			out := make([]string, 0, len(xs))
			for _, x := range xs {
				x = strings.TrimSpace(x)
				if x == "" {
					continue
				}
				if len(x) > 2000 {
					return nil, fmt.Errorf("examples: sentence over 2000 characters")
				}
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("examples: no sentence")
			}
			return out[:min(len(out), 5)], nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) {
			w.addExamples(def.ID, v.([]string))
		},
		OutputTokens: func(c Counts) int { return 4 + 26*c.Examples },
	},
	{
		Name:  "cefr_level",
		Level: DefinitionLevel,
		Rule:  "cefr_level: CEFR level of this sense for learners (A1 most basic .. C2); the lower when unsure.",
		Schema: map[string]any{
			"type": "string", "enum": []string{"A1", "A2", "B1", "B2", "C1", "C2"},
		},
		Missing: func(d *store.Definition) bool { return d.CEFRLevel == nil || *d.CEFRLevel == "" },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var x string
			if err := json.Unmarshal(raw, &x); err != nil {
				return nil, fmt.Errorf("cefr_level: want a string: %v", err)
			}
			x = strings.ToUpper(strings.TrimSpace(x))
			switch x {
			case "A1", "A2", "B1", "B2", "C1", "C2":
				return x, nil
			}
			return nil, fmt.Errorf("cefr_level: %q is not one of A1..C2", x)
		},
		ApplyDef: func(v any, def DefRef, w *Writes) {
			w.setDef(def.ID, "cefr_level", v.(string))
		},
		OutputTokens: func(Counts) int { return 5 },
	},
}

var byName = func() map[string]*Component {
	m := map[string]*Component{}
	for _, c := range catalog {
		m[c.Name] = c
	}
	return m
}()

// Lookup returns the named component.
func Lookup(name string) (*Component, bool) {
	c, ok := byName[name]
	return c, ok
}

// Names lists every component in catalog order.
func Names() []string {
	out := make([]string, len(catalog))
	for i, c := range catalog {
		out[i] = c.Name
	}
	return out
}

// DefaultComponents are Floridify's defaults among the components the catalog has.
func DefaultComponents() []string {
	var out []string
	for _, n := range []string{"synonyms", "examples", "antonyms", "cefr_level", "frequency_band", "register",
		"regional_variants", "domain", "pronunciation", "etymology"} {
		if _, ok := byName[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// ParseComponents turns a --components value ("all", "default", or a comma list) into sorted, validated names.
// An unknown name is an error that names it and lists the known ones.
func ParseComponents(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	switch spec {
	case "", "default":
		return sortComponents(DefaultComponents()), nil
	case "all":
		return sortComponents(Names()), nil
	}
	var out []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		if p == "" {
			continue
		}
		if _, ok := byName[p]; !ok {
			return nil, fmt.Errorf("unknown component %q (known: %s, or all, default)", p, strings.Join(Names(), ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no component given")
	}
	return sortComponents(out), nil
}

// sortComponents orders names as the catalog does, so a component set has one spelling (it is part of keys).
func sortComponents(names []string) []string {
	idx := map[string]int{}
	for i, c := range catalog {
		idx[c.Name] = i
	}
	out := slices.Clone(names)
	sort.Slice(out, func(i, j int) bool { return idx[out[i]] < idx[out[j]] })
	return out
}

// parseWordList validates a list of words: trimmed, non-empty, not the headword, no duplicates (case-insensitive).
func parseWordList(raw json.RawMessage, headword string, limit int) ([]string, error) {
	var xs []string
	if err := json.Unmarshal(raw, &xs); err != nil {
		return nil, fmt.Errorf("want a list of words: %v", err)
	}
	seen := map[string]bool{strings.ToLower(strings.TrimSpace(headword)): true}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		x = strings.TrimSpace(x)
		k := strings.ToLower(x)
		if x == "" || seen[k] || len(x) > 100 {
			continue
		}
		seen[k] = true
		out = append(out, x)
	}
	return out[:min(len(out), limit)], nil
}
