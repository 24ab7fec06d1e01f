package synthesis

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
)

func testWord(nDefs int) WordInput {
	defs := []store.Definition{
		{ID: bson.NewObjectID(), PartOfSpeech: "noun", Text: "sloping land (especially the slope beside a body of water)"},
		{ID: bson.NewObjectID(), PartOfSpeech: "noun", Text: "a financial institution that accepts deposits"},
		{ID: bson.NewObjectID(), PartOfSpeech: "verb", Text: "tip laterally"},
	}
	return WordInput{WordID: bson.NewObjectID(), Word: "bank", Language: "en", Defs: defs[:nDefs]}
}

// walkStrict checks what strict structured outputs require of every object in a schema: properties, all of
// them required, and additionalProperties false.
func walkStrict(t *testing.T, path string, s any) {
	t.Helper()
	m, ok := s.(map[string]any)
	if !ok {
		t.Fatalf("%s: schema is %T, not an object", path, s)
	}
	types := []string{}
	switch ty := m["type"].(type) {
	case string:
		types = append(types, ty)
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	default:
		t.Fatalf("%s: no type", path)
	}
	if slices.Contains(types, "object") {
		props, ok := m["properties"].(map[string]any)
		if !ok || len(props) == 0 {
			t.Fatalf("%s: object without properties", path)
		}
		if m["additionalProperties"] != false {
			t.Fatalf("%s: additionalProperties is %v, want false", path, m["additionalProperties"])
		}
		req, _ := m["required"].([]any)
		if len(req) != len(props) {
			t.Fatalf("%s: required %v does not list every property of %d", path, req, len(props))
		}
		for _, r := range req {
			if _, ok := props[r.(string)]; !ok {
				t.Fatalf("%s: required names unknown property %v", path, r)
			}
		}
		for k, v := range props {
			walkStrict(t, path+"."+k, v)
		}
	}
	if slices.Contains(types, "array") {
		walkStrict(t, path+"[]", m["items"])
	}
	if enum, ok := m["enum"].([]any); ok {
		for _, v := range enum {
			if v == nil && !slices.Contains(types, "null") {
				t.Fatalf("%s: enum allows null but type %v does not", path, types)
			}
		}
	}
}

func bodySchema(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var b struct {
		ResponseFormat struct {
			Type       string `json:"type"`
			JSONSchema struct {
				Strict bool           `json:"strict"`
				Schema map[string]any `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	if b.ResponseFormat.Type != "json_schema" || !b.ResponseFormat.JSONSchema.Strict {
		t.Fatalf("response_format is not a strict json_schema: %s", body)
	}
	return b.ResponseFormat.JSONSchema.Schema
}

func TestSchemasAreStrict(t *testing.T) {
	t.Parallel()
	for _, name := range Names() {
		raw, err := marshalJSON(byName[name].Schema)
		if err != nil {
			t.Fatal(err)
		}
		var s any
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		walkStrict(t, name, s)
	}
	// And the request schemas as uploaded, in every mode, with every component.
	for _, mode := range Modes() {
		planned, err := Plan(testWord(3), PlanOptions{Mode: mode, Model: "gpt-4o-mini", Components: Names()})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range planned {
			walkStrict(t, mode+":"+strings.Join(p.Target.Components, ","), bodySchema(t, p.Rendered.Body))
		}
	}
}

func TestEveryComponentHasItsRules(t *testing.T) {
	t.Parallel()
	for _, c := range catalog {
		if c.Rule == "" || !strings.HasPrefix(c.Rule, c.Name+": ") || c.Schema == nil || c.Parse == nil || c.OutputTokens == nil || c.Tier == "" {
			t.Fatalf("%s: incomplete row", c.Name)
		}
		switch c.Level {
		case DefinitionLevel:
			if c.Missing == nil || c.ApplyDef == nil {
				t.Fatalf("%s: definition component without Missing/ApplyDef", c.Name)
			}
		case WordLevel:
			if c.MissingWord == nil || c.ApplyWord == nil {
				t.Fatalf("%s: word component without MissingWord/ApplyWord", c.Name)
			}
		}
		if _, ok := TierModels[c.Tier]; !ok {
			t.Fatalf("%s: tier %q has no model", c.Name, c.Tier)
		}
	}
	want := []string{"synonyms", "examples", "antonyms", "cefr_level", "frequency_band", "register", "domain",
		"grammar_patterns", "collocations", "usage_notes", "regional_variants", "word_forms", "pronunciation", "etymology", "facts"}
	if !slices.Equal(Names(), want) {
		t.Fatalf("components %v, want %v", Names(), want)
	}
	all, err := ParseComponents("all")
	if err != nil || len(all) != 15 {
		t.Fatalf("all = %v, %v", all, err)
	}
	def, err := ParseComponents("default")
	if err != nil {
		t.Fatal(err)
	}
	wantDef := []string{"synonyms", "examples", "antonyms", "cefr_level", "frequency_band", "register", "domain", "regional_variants", "pronunciation", "etymology"}
	if !slices.Equal(def, wantDef) {
		t.Fatalf("default = %v, want Floridify's %v", def, wantDef)
	}
	if _, err := ParseComponents("synonyms,phrases"); err == nil || !strings.Contains(err.Error(), `"phrases"`) {
		t.Fatalf("unknown component: %v", err)
	}
}

func parse(t *testing.T, name, raw string) (any, error) {
	t.Helper()
	return byName[name].Parse(json.RawMessage(raw), Sense{Word: "bank"})
}

func mustParse(t *testing.T, name, raw string) any {
	t.Helper()
	v, err := parse(t, name, raw)
	if err != nil {
		t.Fatalf("%s %s: %v", name, raw, err)
	}
	return v
}

func TestEnumMappings(t *testing.T) {
	t.Parallel()
	// Register: Floridify's prompt allows literary, its field does not: literary is stored as formal.
	if v := mustParse(t, "register", `"literary"`); v != "formal" {
		t.Fatalf("literary -> %v", v)
	}
	if v := mustParse(t, "register", `"Informal"`); v != "informal" {
		t.Fatalf("Informal -> %v", v)
	}
	// Frequency band: the model answers on the rank scale (1 = commonest), stored with 5 = commonest.
	for ai, stored := range map[string]int{"1": 5, "2": 4, "3": 3, "4": 2, "5": 1} {
		if v := mustParse(t, "frequency_band", ai); v != stored {
			t.Fatalf("frequency band %s -> %v, want %d", ai, v, stored)
		}
	}
	// Word forms: known spellings map to the seven stored types, forms Floridify cannot store are left out.
	wf := mustParse(t, "word_forms", `[{"type":"gerund","text":"banking"},{"type":"third_person_singular","text":"banks"},
		{"type":"past_tense","text":"banked"},{"type":"possessive","text":"bank's"},{"type":"plural","text":"banks"}]`).([]store.WordForm)
	want := []store.WordForm{{FormType: "present_participle", Text: "banking"}, {FormType: "past", Text: "banked"}, {FormType: "plural", Text: "banks"}}
	if !slices.Equal(wf, want) {
		t.Fatalf("word forms %v, want %v", wf, want)
	}
	// Usage notes: looser labels map onto the five stored types.
	un := mustParse(t, "usage_notes", `[{"type":"spelling","text":"Not *bnak."},{"type":"style","text":"Neutral."}]`).([]store.UsageNote)
	if un[0].Type != "error" || un[1].Type != "register" {
		t.Fatalf("usage notes %v", un)
	}
	// Facts: Floridify's own mapping; any other category is usage.
	fs := mustParse(t, "facts", `[{"content":"a","category":"general"},{"content":"b","category":"scientific"},{"content":"c","category":"trivia"},{"content":"d","category":"Historical"}]`).([]factValue)
	if got := []string{fs[0].Category, fs[1].Category, fs[2].Category, fs[3].Category}; !slices.Equal(got, []string{"usage", "linguistic", "usage", "historical"}) {
		t.Fatalf("fact categories %v", got)
	}
	if v := mustParse(t, "regional_variants", `"GB"`).(*string); *v != "UK" {
		t.Fatalf("GB -> %v", *v)
	}
	if v := mustParse(t, "regional_variants", `null`).(*string); v != nil {
		t.Fatalf("null region -> %v", *v)
	}
	if v := mustParse(t, "domain", `"medicine"`).(*string); *v != "medical" {
		t.Fatalf("medicine -> %v", *v)
	}
	if v := mustParse(t, "domain", `null`).(*string); v != nil {
		t.Fatalf("null domain -> %v", *v)
	}

	// Values with no mapping fail the attempt, naming the reason.
	for _, tc := range []struct{ name, raw, reason string }{
		{"register", `"poetic"`, "poetic"},
		{"cefr_level", `"D1"`, "D1"},
		{"frequency_band", `6`, "6"},
		{"frequency_band", `2.5`, "integer"},
		{"usage_notes", `[{"type":"etymology","text":"x"}]`, "etymology"},
		{"word_forms", `[{"type":"diminutive","text":"bankie"}]`, "diminutive"},
		{"regional_variants", `"FR"`, "FR"},
		{"domain", `"astrology"`, "astrology"},
		{"collocations", `[{"text":"river bank","type":"noun","frequency":1.5}]`, "1.5"},
		{"collocations", `[{"text":"river bank","type":"article","frequency":0.7}]`, "article"},
		{"examples", `[]`, "no sentence"},
		{"pronunciation", `{"phonetic":"","ipa":"bæŋk"}`, "phonetic"},
		{"etymology", `{"text":"","origin_language":null,"root_words":[],"first_known_use":null}`, "empty"},
	} {
		_, err := parse(t, tc.name, tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.reason) || !strings.HasPrefix(err.Error(), tc.name) {
			t.Fatalf("%s %s: error %v, want one naming %q", tc.name, tc.raw, err, tc.reason)
		}
	}
}

// An invalid value anywhere in an answer fails the whole request: nothing of it reaches the writes.
func TestInvalidValueFailsTheWholeRequest(t *testing.T) {
	t.Parallel()
	content := `{"synonyms":["shore"],"cefr_level":"B1","register":"poetic"}`
	p, err := Decode(store.TargetDefinition, "bank", 1, []string{"synonyms", "cefr_level", "register"}, content)
	if err == nil || p != nil || !strings.Contains(err.Error(), "poetic") {
		t.Fatalf("Decode = %v, %v; want an error naming the value", p, err)
	}
}

func TestComputeCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang string
		n    int
		pos  string
		want Counts
	}{
		// f = 1 * 1 * 0.8: synonyms round(4) = 4, antonyms round(2.4) = 2, collocations round(3.2) = 3,
		// grammar patterns round(1.6) = 2, facts round(2) = 2.
		{"en", 1, "noun", Counts{Synonyms: 4, Antonyms: 2, Examples: 2, Facts: 2, Collocations: 3, UsageNotes: 2, GrammarPatterns: 2}},
		// poly = min(1 + 4 * 0.15, 1.5) = 1.5, f = 1.5: synonyms round(7.5) = 8 (half to even), antonyms
		// round(4.5) = 4 (half to even), collocations round(6) = 6, facts round(3) = 3.
		{"en", 5, "verb", Counts{Synonyms: 8, Antonyms: 4, Examples: 2, Facts: 3, Collocations: 6, UsageNotes: 2, GrammarPatterns: 2}},
		// lang 0.4, poly 1.3, pos 0.7, f = 0.364: synonyms round(1.82) = 2, antonyms round(1.09) = 1,
		// examples round(0.8) = 1, facts round(2.6) = 3, collocations round(1.46) = 1 -> clamped to 2,
		// usage notes round(0.8) = 1, grammar patterns round(1.4) = 1.
		{"fr", 3, "adverb", Counts{Synonyms: 2, Antonyms: 1, Examples: 1, Facts: 3, Collocations: 2, UsageNotes: 1, GrammarPatterns: 1}},
		// poly 1.15, pos 0.3, f = 0.345: synonyms round(1.73) = 2, antonyms 1, collocations clamped to 2,
		// grammar patterns round(0.6) = 1, facts round(2.3) = 2.
		{"en", 2, "preposition", Counts{Synonyms: 2, Antonyms: 1, Examples: 2, Facts: 2, Collocations: 2, UsageNotes: 2, GrammarPatterns: 1}},
		// Unknown part of speech: 0.5. f = 0.5: synonyms round(2.5) = 2, antonyms round(1.5) = 2, collocations 2,
		// grammar patterns round(1) = 1.
		{"en", 1, "phrase", Counts{Synonyms: 2, Antonyms: 2, Examples: 2, Facts: 2, Collocations: 2, UsageNotes: 2, GrammarPatterns: 1}},
	} {
		if got := ComputeCounts(tc.lang, tc.n, tc.pos); got != tc.want {
			t.Fatalf("ComputeCounts(%s, %d, %s) = %+v, want %+v", tc.lang, tc.n, tc.pos, got, tc.want)
		}
	}
	// Floridify's facts connector clamps the adaptive count to 3..8.
	if n := byName["facts"].CountOf(ComputeCounts("en", 1, "noun")); n != 3 {
		t.Fatalf("facts count %d, want 3", n)
	}
}

func TestPlanModes(t *testing.T) {
	t.Parallel()
	w := testWord(3)
	comps := []string{"synonyms", "cefr_level", "pronunciation", "facts"}
	count := func(mode string) (defReqs, wordReqs int) {
		planned, err := Plan(w, PlanOptions{Mode: mode, Model: "gpt-4o-mini", Components: comps})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range planned {
			if p.Target.Kind == store.TargetDefinition {
				defReqs++
			} else {
				wordReqs++
			}
			if p.Model != "gpt-4o-mini" || !strings.Contains(string(p.Rendered.Body), `"model":"gpt-4o-mini"`) {
				t.Fatalf("request model %s", p.Model)
			}
		}
		return
	}
	if d, wr := count(ModePerComponent); d != 6 || wr != 2 {
		t.Fatalf("per-component: %d definition and %d word requests, want 6 and 2", d, wr)
	}
	if d, wr := count(ModePacked); d != 3 || wr != 1 {
		t.Fatalf("packed: %d definition and %d word requests, want 3 and 1", d, wr)
	}
	if d, wr := count(ModePackedWord); d != 0 || wr != 1 {
		t.Fatalf("packed-word: %d definition and %d word requests, want 0 and 1", d, wr)
	}

	// Fields present are not asked again; word-level state decides the word components.
	cefr := "B1"
	w.Defs[0].CEFRLevel = &cefr
	w.Defs[0].Synonyms = []string{"shore"}
	w.State = WordState{HasPronunciation: true, Facts: 2}
	planned, err := Plan(w, PlanOptions{Mode: ModePacked, Model: "gpt-4o-mini", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	if len(planned) != 2 {
		t.Fatalf("want requests for the two incomplete senses only, got %d", len(planned))
	}
	planned, err = Plan(w, PlanOptions{Mode: ModePacked, Model: "gpt-4o-mini", Components: comps, Force: true, Nonce: "job1"})
	if err != nil || len(planned) != 4 {
		t.Fatalf("forced: %d requests, %v", len(planned), err)
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	planned, err := Plan(testWord(2), PlanOptions{Mode: ModePacked, Model: ModelAuto,
		Components: []string{"synonyms", "examples", "cefr_level", "register", "pronunciation", "etymology"}})
	if err != nil {
		t.Fatal(err)
	}
	byModel := map[string][]string{}
	for _, p := range planned {
		var b struct {
			Model               string   `json:"model"`
			Temperature         *float64 `json:"temperature"`
			MaxTokens           int      `json:"max_tokens"`
			MaxCompletionTokens int      `json:"max_completion_tokens"`
			Messages            []struct {
				Role string `json:"role"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(p.Rendered.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Model != p.Model {
			t.Fatalf("body model %s, planned %s", b.Model, p.Model)
		}
		// GPT-5 bodies: max_completion_tokens, no temperature, developer role.
		if b.Temperature != nil || b.MaxTokens != 0 || b.MaxCompletionTokens == 0 || b.Messages[0].Role != "developer" {
			t.Fatalf("%s body: %s", p.Model, p.Rendered.Body)
		}
		byModel[p.Model] = append(byModel[p.Model], strings.Join(p.Target.Components, ","))
	}
	want := map[string][]string{
		"gpt-5-mini": {"synonyms,examples", "synonyms,examples", "etymology"},
		"gpt-5-nano": {"cefr_level,register", "cefr_level,register", "pronunciation"},
	}
	for m, w := range want {
		if !slices.Equal(byModel[m], w) {
			t.Fatalf("%s: %v, want %v", m, byModel[m], w)
		}
	}
	if got := Models(ModelAuto, []string{"cefr_level", "synonyms"}); !slices.Equal(got, []string{"gpt-5-mini", "gpt-5-nano"}) {
		t.Fatalf("Models(auto) = %v", got)
	}
	if got := Models("gpt-4o-mini", Names()); !slices.Equal(got, []string{"gpt-4o-mini"}) {
		t.Fatalf("Models(gpt-4o-mini) = %v", got)
	}
	// A named model overrides the table; older models get max_tokens, a temperature and the system role.
	planned, err = Plan(testWord(1), PlanOptions{Mode: ModePacked, Model: "gpt-4o-mini", Components: []string{"synonyms", "cefr_level"}})
	if err != nil || len(planned) != 1 {
		t.Fatalf("%d requests, %v", len(planned), err)
	}
	if b := string(planned[0].Rendered.Body); !strings.Contains(b, `"role":"system"`) || !strings.Contains(b, `"temperature":0.7`) || !strings.Contains(b, `"max_tokens":`) {
		t.Fatalf("gpt-4o-mini body: %s", b)
	}
}

// The static part comes first and is byte-identical across words; the word comes last.
func TestPromptOrderForCaching(t *testing.T) {
	t.Parallel()
	comps := []string{"synonyms", "examples", "cefr_level"}
	a, err := Plan(testWord(1), PlanOptions{Mode: ModePacked, Model: "gpt-5-mini", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	w := testWord(1)
	w.Word, w.Defs[0].Text = "shore", "the land along the edge of a body of water"
	b, err := Plan(w, PlanOptions{Mode: ModePacked, Model: "gpt-5-mini", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	var ma, mb struct {
		Messages []message `json:"messages"`
	}
	_ = json.Unmarshal(a[0].Rendered.Body, &ma)
	_ = json.Unmarshal(b[0].Rendered.Body, &mb)
	if ma.Messages[0] != mb.Messages[0] {
		t.Fatal("developer messages differ between words")
	}
	if !strings.HasPrefix(ma.Messages[1].Content, "word: bank\n") || !strings.HasSuffix(mb.Messages[1].Content, "N: synonyms 4, examples 2") {
		t.Fatalf("user message: %q", mb.Messages[1].Content)
	}
	if a[0].Rendered.StaticTokens != b[0].Rendered.StaticTokens {
		t.Fatal("static token counts differ")
	}
}

func TestPartsAddUp(t *testing.T) {
	t.Parallel()
	for _, mode := range Modes() {
		planned, err := Plan(testWord(3), PlanOptions{Mode: mode, Model: "gpt-4o-mini", Components: Names()})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range planned {
			var in, out int64
			for _, part := range p.Rendered.Parts {
				if part.InputTokens <= 0 || part.OutputTokens <= 0 {
					t.Fatalf("%s: part %+v", mode, part)
				}
				in += part.InputTokens
				out += part.OutputTokens
			}
			if in != p.Rendered.InputTokens || out != p.Rendered.OutputTokens || len(p.Rendered.Parts) != len(p.Target.Components) {
				t.Fatalf("%s: parts add to %d/%d, request %d/%d", mode, in, out, p.Rendered.InputTokens, p.Rendered.OutputTokens)
			}
		}
	}
}
