package synthesis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/floridify/batchsynth/internal/store"
)

// PromptVersion is part of every request key: changing a prompt or schema must bump it, so that new
// requests are not confused with answers to the old ones (and the result cache never serves an answer to a
// different prompt).
const PromptVersion = "v2"

// Level says whether a component is asked per definition or per word.
type Level int

const (
	DefinitionLevel Level = iota
	WordLevel
)

// Tier groups components by the kind of work they ask for, for model routing (routing.go). The split follows
// Floridify's own routing (ai/model_selection.py): its LOW-tier tasks classify, its MEDIUM-tier tasks generate.
type Tier string

const (
	TierClassify Tier = "classify"
	TierGenerate Tier = "generate"
)

// Sense is what a component sees of one definition.
type Sense struct {
	Word         string
	Language     string
	PartOfSpeech string
	Text         string
	Counts       Counts
}

// WordState is what word-level components see of a word as Floridify stores it: its synthesis dictionary
// entry and whether the documents that entry links exist. The pipeline loads it per chunk (one query per
// collection); the zero value means "nothing stored", which is what an offline estimate assumes.
type WordState struct {
	// Entry is the word's DictionaryEntry with provider "synthesis"; nil when the word has none yet.
	Entry *store.DictionaryEntry
	// HasPronunciation: Entry.pronunciation_id names a pronunciations document that exists.
	HasPronunciation bool
	// Facts counts the facts documents Entry.fact_ids names that exist.
	Facts int
	// SourceEtymologies are other providers' etymology texts for the word, given to the model as grounding.
	SourceEtymologies []string
}

// Component is one row of the catalog.
type Component struct {
	Name  string
	Level Level
	Tier  Tier
	// Temperature is Floridify's for this task (get_temperature_for_model); a request takes the highest of its
	// components'. Reasoning models get none.
	Temperature float64
	// Rule is one line of the (static) developer message; counts are given per sense in the user message.
	Rule string
	// Schema is the strict JSON schema of this component's value: every property required, nullable where
	// Floridify's field is optional, additionalProperties false, and nothing Floridify does not store.
	Schema map[string]any
	// CountOf returns the number of items asked for (nil for scalar components); shown in the user message.
	CountOf func(Counts) int
	// Missing reports whether the definition lacks this component (Floridify's "field is empty" rule);
	// definition-level components only.
	Missing func(d *store.Definition) bool
	// MissingWord is Missing for word-level components.
	MissingWord func(s *WordState) bool
	// Parse validates and normalises the model's value to Floridify's types and enums. An error fails the
	// attempt, naming the reason; nothing of that request is written.
	Parse func(raw json.RawMessage, s Sense) (any, error)
	// ApplyDef adds the writes of a parsed definition-level value.
	ApplyDef func(v any, def DefRef, w *Writes)
	// ApplyWord adds the writes of a parsed word-level value.
	ApplyWord func(v any, in ApplyInput, w *Writes)
	// OutputTokens models the completion tokens of this component's value (without its JSON key, which Render
	// counts) for one sense, or once per word for word-level components. Calibrated with o200k_base on
	// typical answers of the length the rule asks for; see docs/benchmarks.md.
	OutputTokens func(Counts) int
}

var strArray = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}

// object is a strict object schema over name, schema pairs: all required, in the given order.
func object(pairs ...any) map[string]any {
	var p orderedProps
	for i := 0; i+1 < len(pairs); i += 2 {
		p.add(pairs[i].(string), pairs[i+1])
	}
	return p.schema()
}

// orderedProps are an object schema's properties, marshalled in insertion order: structured outputs answer
// in schema order, and the order is part of the prompt (a collocation's text before its strength, the senses
// before the word's facts).
type orderedProps struct {
	keys []string
	vals []any
}

func (p *orderedProps) add(k string, v any) {
	p.keys = append(p.keys, k)
	p.vals = append(p.vals, v)
}

// schema is the strict object schema over p: every property required, no other property allowed.
func (p orderedProps) schema() map[string]any {
	req := make([]any, len(p.keys))
	for i, k := range p.keys {
		req[i] = k
	}
	return map[string]any{"type": "object", "properties": p, "required": req, "additionalProperties": false}
}

func (p orderedProps) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range p.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		vb, err := marshalJSON(p.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalJSON encodes v without HTML escaping, as request bodies are encoded, so token counts of a schema
// match the bytes uploaded.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func arrayOf(item map[string]any) map[string]any {
	return map[string]any{"type": "array", "items": item}
}

var nullableString = map[string]any{"type": []any{"string", "null"}}

// catalog is the table. Definition-level rows come first, in Floridify's order; the order fixes the one
// spelling of a component set (part of request keys) and the order of rules in a prompt.
var catalog = []*Component{
	{
		Name: "synonyms", Level: DefinitionLevel, Tier: TierGenerate, Temperature: 0.7,
		Rule:    "synonyms: N words or short phrases sharing this sense and part of speech, commonest first; not the headword.",
		Schema:  strArray,
		CountOf: func(c Counts) int { return c.Synonyms },
		Missing: func(d *store.Definition) bool { return len(d.Synonyms) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			xs, err := parseWordList(raw, s.Word, 50)
			if err != nil {
				return nil, fmt.Errorf("synonyms: %w", err)
			}
			return xs, nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.def(def.ID).Synonyms = store.SetTo(v.([]string)) },
		OutputTokens: func(c Counts) int { return 1 + 3*c.Synonyms },
	},
	{
		Name: "examples", Level: DefinitionLevel, Tier: TierGenerate, Temperature: 0.8,
		Rule:    "examples: N natural, contemporary sentences of 15-25 words using the headword in this sense.",
		Schema:  strArray,
		CountOf: func(c Counts) int { return c.Examples },
		Missing: func(d *store.Definition) bool { return len(d.ExampleIDs) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			xs, err := parseTexts(raw, 2000, 5)
			if err != nil {
				return nil, fmt.Errorf("examples: %w", err)
			}
			if len(xs) == 0 {
				return nil, fmt.Errorf("examples: no sentence")
			}
			return xs, nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.addExamples(def.ID, v.([]string)) },
		OutputTokens: func(c Counts) int { return 1 + 23*c.Examples },
	},
	{
		Name: "antonyms", Level: DefinitionLevel, Tier: TierGenerate, Temperature: 0.7,
		Rule:    "antonyms: up to N true opposites of this sense; [] if none.",
		Schema:  strArray,
		CountOf: func(c Counts) int { return c.Antonyms },
		Missing: func(d *store.Definition) bool { return len(d.Antonyms) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			xs, err := parseWordList(raw, s.Word, 50)
			if err != nil {
				return nil, fmt.Errorf("antonyms: %w", err)
			}
			return xs, nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) { w.def(def.ID).Antonyms = store.SetTo(v.([]string)) },
		// Many senses have fewer true opposites than asked: about two thirds of N on average.
		OutputTokens: func(c Counts) int { return 1 + 2*c.Antonyms },
	},
	{
		Name: "cefr_level", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.3,
		Rule:    "cefr_level: CEFR level a learner needs for this sense; the lower when unsure.",
		Schema:  enumSchema(cefrLevels, false),
		Missing: func(d *store.Definition) bool { return d.CEFRLevel == nil || *d.CEFRLevel == "" },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			x, err := parseString(raw)
			if err != nil {
				return nil, fmt.Errorf("cefr_level: %w", err)
			}
			x = strings.ToUpper(strings.TrimSpace(x))
			if !slices.Contains(cefrLevels, x) {
				return nil, fmt.Errorf("cefr_level: %q is not one of A1..C2", x)
			}
			return x, nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.def(def.ID).CEFRLevel = store.SetTo(v.(string)) },
		OutputTokens: func(Counts) int { return 3 },
	},
	{
		Name: "frequency_band", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.3,
		Rule:    "frequency_band: corpus rank of this sense: 1 top 1,000 words, 2 to 3,000, 3 to 5,000, 4 to 10,000, 5 rarer.",
		Schema:  map[string]any{"type": "integer", "enum": []any{1, 2, 3, 4, 5}},
		Missing: func(d *store.Definition) bool { return d.FrequencyBand == nil },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var f float64
			if err := unmarshal(raw, &f); err != nil || f != float64(int(f)) {
				return nil, fmt.Errorf("frequency_band: want an integer 1..5, got %s", raw)
			}
			b, err := StoredFrequencyBand(int(f))
			if err != nil {
				return nil, fmt.Errorf("frequency_band: %w", err)
			}
			return b, nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.def(def.ID).FrequencyBand = store.SetTo(v.(int)) },
		OutputTokens: func(Counts) int { return 1 },
	},
	{
		Name: "register", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.3,
		Rule:    "register: of this sense; literary counts as formal.",
		Schema:  enumSchema(registers, false),
		Missing: func(d *store.Definition) bool { return d.LanguageRegister == nil || *d.LanguageRegister == "" },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			x, err := parseString(raw)
			if err != nil {
				return nil, fmt.Errorf("register: %w", err)
			}
			r, err := mapRegister(x)
			if err != nil {
				return nil, fmt.Errorf("register: %w", err)
			}
			return r, nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.def(def.ID).LanguageRegister = store.SetTo(v.(string)) },
		OutputTokens: func(Counts) int { return 3 },
	},
	{
		Name: "domain", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.3,
		Rule:    "domain: field of a specialised sense; null if general or figurative.",
		Schema:  enumSchema(domains, true),
		Missing: func(d *store.Definition) bool { return d.Domain == nil || *d.Domain == "" },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			x, err := parseNullableString(raw)
			if err != nil {
				return nil, fmt.Errorf("domain: %w", err)
			}
			if x == nil {
				return (*string)(nil), nil
			}
			d, err := mapDomain(*x)
			if err != nil {
				return nil, fmt.Errorf("domain: %w", err)
			}
			return optional(d), nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) { w.def(def.ID).Domain = store.SetTo(v.(*string)) },
		// null (1 token) for most senses, a name (3) for specialised ones.
		OutputTokens: func(Counts) int { return 2 },
	},
	{
		Name: "grammar_patterns", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.7,
		Rule: "grammar_patterns: N patterns of this sense as dictionary codes ([T], [I], [Tn.pr], [V-ing], [V to-inf], [V that], " +
			"[C], [U], [pl], [attrib], [pred], [+prep]...), each described in at most 6 words.",
		Schema:  arrayOf(object("pattern", map[string]any{"type": "string"}, "description", nullableString)),
		CountOf: func(c Counts) int { return c.GrammarPatterns },
		Missing: func(d *store.Definition) bool { return len(d.GrammarPatterns) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []struct {
				Pattern     string  `json:"pattern"`
				Description *string `json:"description"`
			}
			if err := unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("grammar_patterns: want a list of {pattern, description}: %v", err)
			}
			out := make([]store.GrammarPat, 0, len(xs))
			for _, x := range xs {
				p := strings.TrimSpace(x.Pattern)
				if p == "" {
					continue
				}
				if len(p) > 100 {
					return nil, fmt.Errorf("grammar_patterns: pattern over 100 characters")
				}
				var desc *string
				if x.Description != nil {
					desc = optional(strings.TrimSpace(*x.Description))
				}
				out = append(out, store.GrammarPat{Pattern: p, Description: desc})
			}
			return out[:min(len(out), 10)], nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) {
			w.def(def.ID).GrammarPatterns = store.SetTo(v.([]store.GrammarPat))
		},
		OutputTokens: func(c Counts) int { return 1 + 16*c.GrammarPatterns },
	},
	{
		Name: "collocations", Level: DefinitionLevel, Tier: TierGenerate, Temperature: 0.7,
		Rule: "collocations: N frequent collocations in this sense; type: the collocate's part of speech; frequency: strength 0.6-1.",
		Schema: arrayOf(object("text", map[string]any{"type": "string"}, "type", enumSchema(collocTypes, false),
			"frequency", map[string]any{"type": "number"})),
		CountOf: func(c Counts) int { return c.Collocations },
		Missing: func(d *store.Definition) bool { return len(d.Collocations) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []struct {
				Text      string  `json:"text"`
				Type      string  `json:"type"`
				Frequency float64 `json:"frequency"`
			}
			if err := unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("collocations: want a list of {text, type, frequency}: %v", err)
			}
			out := make([]store.Collocation, 0, len(xs))
			for _, x := range xs {
				t := strings.TrimSpace(x.Text)
				if t == "" {
					continue
				}
				if len(t) > 200 {
					return nil, fmt.Errorf("collocations: text over 200 characters")
				}
				typ, err := mapCollocationType(x.Type)
				if err != nil {
					return nil, fmt.Errorf("collocations: %w", err)
				}
				if x.Frequency < 0 || x.Frequency > 1 {
					return nil, fmt.Errorf("collocations: frequency %v is not within 0..1", x.Frequency)
				}
				out = append(out, store.Collocation{Text: t, Type: typ, Frequency: x.Frequency})
			}
			return out[:min(len(out), 10)], nil
		},
		ApplyDef:     func(v any, def DefRef, w *Writes) { w.def(def.ID).Collocations = store.SetTo(v.([]store.Collocation)) },
		OutputTokens: func(c Counts) int { return 1 + 17*c.Collocations },
	},
	{
		Name: "usage_notes", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.7,
		Rule:    "usage_notes: up to N notes of at most 20 words on learners' pitfalls with this sense; [] if none.",
		Schema:  arrayOf(object("type", enumSchema(usageNoteTypes, false), "text", map[string]any{"type": "string"})),
		CountOf: func(c Counts) int { return c.UsageNotes },
		Missing: func(d *store.Definition) bool { return len(d.UsageNotes) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("usage_notes: want a list of {type, text}: %v", err)
			}
			out := make([]store.UsageNote, 0, len(xs))
			for _, x := range xs {
				t := strings.TrimSpace(x.Text)
				if t == "" {
					continue
				}
				if len(t) > 1000 {
					return nil, fmt.Errorf("usage_notes: note over 1000 characters")
				}
				typ, err := mapUsageNoteType(x.Type)
				if err != nil {
					return nil, fmt.Errorf("usage_notes: %w", err)
				}
				out = append(out, store.UsageNote{Type: typ, Text: t})
			}
			return out[:min(len(out), 5)], nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) { w.def(def.ID).UsageNotes = store.SetTo(v.([]store.UsageNote)) },
		// A note of about 15 words with its type.
		OutputTokens: func(c Counts) int { return 1 + 26*c.UsageNotes },
	},
	{
		Name: "regional_variants", Level: DefinitionLevel, Tier: TierClassify, Temperature: 0.7,
		// Floridify asks for a list and stores only its first element (Definition.region); we ask for that one.
		Rule:    "regional_variants: region where this sense is chiefly used; null if everywhere.",
		Schema:  enumSchema(regions, true),
		Missing: func(d *store.Definition) bool { return d.Region == nil || *d.Region == "" },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			x, err := parseNullableString(raw)
			if err != nil {
				return nil, fmt.Errorf("regional_variants: %w", err)
			}
			if x == nil || strings.TrimSpace(*x) == "" {
				return (*string)(nil), nil
			}
			r, err := mapRegion(*x)
			if err != nil {
				return nil, fmt.Errorf("regional_variants: %w", err)
			}
			return &r, nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) { w.def(def.ID).Region = store.SetTo(v.(*string)) },
		// null (1 token) for most senses, a code (3) for regional ones.
		OutputTokens: func(Counts) int { return 2 },
	},
	{
		// Floridify lists word_forms among its word-level components, but it asks per definition (inputs: word
		// and part of speech) and stores the answer on each Definition.word_forms. We do the same: it is a
		// definition-level component here, so its Missing rule, its apply rule and every request mode work
		// per definition like the rest.
		Name: "word_forms", Level: DefinitionLevel, Tier: TierGenerate, Temperature: 0.7,
		Rule:    "word_forms: the headword's inflections for this part of speech (plural; past, past_participle, present_participle; comparative, superlative) and spelling variants; [] if none.",
		Schema:  arrayOf(object("type", enumSchema(wordFormTypes, false), "text", map[string]any{"type": "string"})),
		Missing: func(d *store.Definition) bool { return len(d.WordForms) == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("word_forms: want a list of {type, text}: %v", err)
			}
			out := make([]store.WordForm, 0, len(xs))
			for _, x := range xs {
				t := strings.TrimSpace(x.Text)
				if t == "" {
					continue
				}
				if len(t) > 100 {
					return nil, fmt.Errorf("word_forms: form over 100 characters")
				}
				typ, keep, err := mapWordFormType(x.Type)
				if err != nil {
					return nil, fmt.Errorf("word_forms: %w", err)
				}
				if keep {
					out = append(out, store.WordForm{FormType: typ, Text: t})
				}
			}
			return out[:min(len(out), 10)], nil
		},
		ApplyDef: func(v any, def DefRef, w *Writes) { w.def(def.ID).WordForms = store.SetTo(v.([]store.WordForm)) },
		// One form for a noun (11 tokens), three for a verb (33).
		OutputTokens: func(Counts) int { return 20 },
	},
	{
		Name: "pronunciation", Level: WordLevel, Tier: TierClassify, Temperature: 0.7,
		Rule: "pronunciation: phonetic respelling in hyphenated syllables with the stressed one in capitals (fuh-NET-iks), " +
			"and IPA (American for English) with ˈ and ˌ.",
		Schema:      object("phonetic", map[string]any{"type": "string"}, "ipa", map[string]any{"type": "string"}),
		MissingWord: func(s *WordState) bool { return !s.HasPronunciation },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var x struct {
				Phonetic string `json:"phonetic"`
				IPA      string `json:"ipa"`
			}
			if err := unmarshal(raw, &x); err != nil {
				return nil, fmt.Errorf("pronunciation: want {phonetic, ipa}: %v", err)
			}
			p := strings.TrimSpace(x.Phonetic)
			if p == "" {
				return nil, fmt.Errorf("pronunciation: empty phonetic")
			}
			if len(p) > 200 || len(x.IPA) > 200 {
				return nil, fmt.Errorf("pronunciation: over 200 characters")
			}
			return pronunciationValue{Phonetic: p, IPA: optional(strings.TrimSpace(x.IPA))}, nil
		},
		ApplyWord:    func(v any, in ApplyInput, w *Writes) { w.setPronunciation(in, v.(pronunciationValue)) },
		OutputTokens: func(Counts) int { return 22 },
	},
	{
		Name: "etymology", Level: WordLevel, Tier: TierGenerate, Temperature: 0.7,
		Rule: "etymology: the word's origin in 2-3 sentences, its origin language, root words, and first known use " +
			"(e.g. \"late 14th century\"); null where unknown.",
		Schema: object("text", map[string]any{"type": "string"}, "origin_language", nullableString,
			"root_words", strArray, "first_known_use", nullableString),
		MissingWord: func(s *WordState) bool {
			return s.Entry == nil || s.Entry.Etymology == nil || strings.TrimSpace(s.Entry.Etymology.Text) == ""
		},
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var x struct {
				Text           string   `json:"text"`
				OriginLanguage *string  `json:"origin_language"`
				RootWords      []string `json:"root_words"`
				FirstKnownUse  *string  `json:"first_known_use"`
			}
			if err := unmarshal(raw, &x); err != nil {
				return nil, fmt.Errorf("etymology: want {text, origin_language, root_words, first_known_use}: %v", err)
			}
			t := strings.TrimSpace(x.Text)
			if t == "" {
				return nil, fmt.Errorf("etymology: empty text")
			}
			if len(t) > 5000 {
				return nil, fmt.Errorf("etymology: text over 5000 characters")
			}
			roots := make([]string, 0, len(x.RootWords))
			for _, r := range x.RootWords {
				if r = strings.TrimSpace(r); r != "" && len(r) <= 100 && !slices.Contains(roots, r) {
					roots = append(roots, r)
				}
			}
			e := store.Etymology{Text: t, RootWords: roots}
			if x.OriginLanguage != nil {
				e.OriginLanguage = optional(strings.TrimSpace(*x.OriginLanguage))
			}
			if x.FirstKnownUse != nil {
				e.FirstKnownUse = optional(strings.TrimSpace(*x.FirstKnownUse))
			}
			return e, nil
		},
		ApplyWord:    func(v any, in ApplyInput, w *Writes) { w.setEtymology(in, v.(store.Etymology)) },
		OutputTokens: func(Counts) int { return 85 },
	},
	{
		Name: "facts", Level: WordLevel, Tier: TierGenerate, Temperature: 0.8,
		Rule:   "facts: N short, true, interesting facts about the word, one sentence each, with their category.",
		Schema: arrayOf(object("content", map[string]any{"type": "string"}, "category", enumSchema(factCategories, false))),
		// Floridify's adaptive count (1..4) is clamped to 3..8 by its facts connector: that is what it asks.
		CountOf:     func(c Counts) int { return clamp(c.Facts, 3, 8) },
		MissingWord: func(s *WordState) bool { return s.Facts == 0 },
		Parse: func(raw json.RawMessage, s Sense) (any, error) {
			var xs []struct {
				Content  string `json:"content"`
				Category string `json:"category"`
			}
			if err := unmarshal(raw, &xs); err != nil {
				return nil, fmt.Errorf("facts: want a list of {content, category}: %v", err)
			}
			out := make([]factValue, 0, len(xs))
			for _, x := range xs {
				t := strings.TrimSpace(x.Content)
				if t == "" {
					continue
				}
				if len(t) > 2000 {
					return nil, fmt.Errorf("facts: fact over 2000 characters")
				}
				out = append(out, factValue{Content: t, Category: mapFactCategory(x.Category)})
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("facts: no fact")
			}
			return out[:min(len(out), 8)], nil
		},
		ApplyWord:    func(v any, in ApplyInput, w *Writes) { w.addFacts(in, v.([]factValue)) },
		OutputTokens: func(c Counts) int { return 1 + 23*clamp(c.Facts, 3, 8) },
	},
}

// pronunciationValue and factValue are parsed word-level answers, turned into documents when applied.
type pronunciationValue struct {
	Phonetic string
	IPA      *string
}

type factValue struct {
	Content  string
	Category string
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

// DefaultComponents are Floridify's defaults at HEAD: default_definition_components() plus
// default_word_components() (ai/constants.py).
func DefaultComponents() []string {
	return sortComponents([]string{"synonyms", "examples", "antonyms", "cefr_level", "frequency_band", "register",
		"regional_variants", "domain", "pronunciation", "etymology"})
}

// ParseComponents turns a --components value ("all", "default", or a comma list) into sorted, validated names.
// An unknown name is an error that names it and lists the known ones.
func ParseComponents(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	switch spec {
	case "", "default":
		return DefaultComponents(), nil
	case "all":
		return Names(), nil
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
	sort.SliceStable(out, func(i, j int) bool { return idx[out[i]] < idx[out[j]] })
	return out
}

// parseWordList validates a list of words: trimmed, non-empty, not the headword, no duplicates (case-insensitive).
func parseWordList(raw json.RawMessage, headword string, limit int) ([]string, error) {
	var xs []string
	if err := unmarshal(raw, &xs); err != nil {
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

// parseTexts validates a list of sentences: trimmed, non-empty, at most maxLen bytes, no duplicates.
func parseTexts(raw json.RawMessage, maxLen, limit int) ([]string, error) {
	var xs []string
	if err := unmarshal(raw, &xs); err != nil {
		return nil, fmt.Errorf("want a list of sentences: %v", err)
	}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if len(x) > maxLen {
			return nil, fmt.Errorf("sentence over %d characters", maxLen)
		}
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out[:min(len(out), limit)], nil
}

func parseString(raw json.RawMessage) (string, error) {
	var x string
	if err := unmarshal(raw, &x); err != nil {
		return "", fmt.Errorf("want a string, got %s", raw)
	}
	return x, nil
}

func parseNullableString(raw json.RawMessage) (*string, error) {
	var x *string
	if err := unmarshal(raw, &x); err != nil {
		return nil, fmt.Errorf("want a string or null, got %s", raw)
	}
	return x, nil
}

// optional returns nil for "", so an empty answer is stored as Floridify's null.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
