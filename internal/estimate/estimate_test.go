package estimate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var bank = []store.InputWord{{Word: "bank", Definitions: []store.InputDefinition{
	{PartOfSpeech: "noun", Text: "sloping land (especially the slope beside a body of water)"},
}}}

// independentCount counts a body's input tokens straight from tiktoken, by the rule the docs state: the
// developer (or system) message, the user message and the response schema as uploaded, plus 3 tokens per
// message and its role, plus 3 that prime the reply.
func independentCount(t *testing.T, body []byte) int64 {
	t.Helper()
	tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
	enc, err := tiktoken.GetEncoding("o200k_base")
	if err != nil {
		t.Fatal(err)
	}
	n := func(s string) int64 { return int64(len(enc.Encode(s, nil, nil))) }
	var b struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		ResponseFormat struct {
			JSONSchema struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	total := n(string(b.ResponseFormat.JSONSchema.Schema)) + 3
	for _, m := range b.Messages {
		total += 3 + n(m.Role) + n(m.Content)
	}
	return total
}

func TestInputTokensMatchTiktoken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		model, mode string
		comps       []string
	}{
		{"gpt-4o-mini", synthesis.ModePacked, []string{"cefr_level"}},
		{"gpt-4o-mini", synthesis.ModePacked, []string{"synonyms", "examples", "antonyms", "cefr_level", "register", "domain",
			"grammar_patterns", "collocations", "usage_notes", "regional_variants"}},
		{"gpt-5-mini", synthesis.ModePackedWord, synthesis.Names()[:11]},
		{"gpt-5-nano", synthesis.ModePerComponent, []string{"register"}},
	} {
		rep, err := Run(ctx, bank, Options{Components: tc.comps, Modes: []string{tc.mode}, Model: tc.model}, Offline{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Modes[0].Total.Requests != 1 {
			t.Fatalf("%v: %d requests, want 1", tc.comps, rep.Modes[0].Total.Requests)
		}
		// The body the builder would store for this word.
		in, _, _ := Offline{}.Inputs(ctx, bank, tc.comps)
		planned, err := synthesis.Plan(in[0], synthesis.PlanOptions{Mode: tc.mode, Model: tc.model, Components: tc.comps})
		if err != nil || len(planned) != 1 {
			t.Fatalf("%d planned, %v", len(planned), err)
		}
		body := planned[0].Rendered.Body
		if !bytes.Contains(body, []byte(`word: bank\n`)) {
			t.Fatalf("unexpected body %s", body)
		}
		want := independentCount(t, body)
		if got := rep.Modes[0].Total.InputTokens; got != want {
			t.Fatalf("%s %s %v: estimate counts %d input tokens, tiktoken %d", tc.model, tc.mode, tc.comps, got, want)
		}
	}
}

func readWords(t *testing.T, path string) []store.InputWord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := input.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return p.Words
}

func TestModesSideBySide(t *testing.T) {
	t.Parallel()
	words := readWords(t, "../../examples/words.jsonl")
	comps, err := synthesis.ParseComponents("all")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), words, Options{Components: comps, Model: "gpt-4o-mini"}, Offline{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Words != 50 || rep.Definitions == 0 || len(rep.Modes) != 3 {
		t.Fatalf("report: %d words, %d definitions, %d modes", rep.Words, rep.Definitions, len(rep.Modes))
	}
	byMode := map[string]ModeReport{}
	for _, m := range rep.Modes {
		byMode[m.Mode] = m
		var in, out int64
		var usd float64
		for _, l := range m.Components {
			in += l.InputTokens
			out += l.OutputTokens
			usd += l.BatchUSD
		}
		if in != m.Total.InputTokens || out != m.Total.OutputTokens || usd-m.Total.BatchUSD > 1e-9 || m.Total.BatchUSD-usd > 1e-9 {
			t.Fatalf("%s: components add to %d/%d/$%f, total %d/%d/$%f", m.Mode, in, out, usd, m.Total.InputTokens, m.Total.OutputTokens, m.Total.BatchUSD)
		}
		if m.Total.ImmediateUSD <= m.Total.BatchUSD || m.CachedPrice {
			t.Fatalf("%s: immediate $%f, batch $%f, cached price %v", m.Mode, m.Total.ImmediateUSD, m.Total.BatchUSD, m.CachedPrice)
		}
	}
	defLevel, wordLevel := 12, 3 // word_forms is asked per definition
	pc, p, pw := byMode[synthesis.ModePerComponent], byMode[synthesis.ModePacked], byMode[synthesis.ModePackedWord]
	if pc.Total.Requests != rep.Definitions*defLevel+rep.Words*wordLevel {
		t.Fatalf("per-component: %d requests", pc.Total.Requests)
	}
	if p.Total.Requests != rep.Definitions+rep.Words || pw.Total.Requests != rep.Words {
		t.Fatalf("packed %d, packed-word %d requests", p.Total.Requests, pw.Total.Requests)
	}
	if !(pw.Total.BatchUSD < p.Total.BatchUSD && p.Total.BatchUSD < pc.Total.BatchUSD) {
		t.Fatalf("batch $: per-component %f, packed %f, packed-word %f", pc.Total.BatchUSD, p.Total.BatchUSD, pw.Total.BatchUSD)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"modes side by side", "per-component", "packed-word", "etymology", "total"} {
		if !strings.Contains(text.String(), s) {
			t.Fatalf("text report lacks %q:\n%s", s, text.String())
		}
	}
}

func TestCachedInputOnlyForGPT5(t *testing.T) {
	t.Parallel()
	words := readWords(t, "../../examples/words.jsonl")
	rep, err := Run(context.Background(), words, Options{Components: synthesis.Names(), Modes: []string{synthesis.ModePackedWord}, Model: "gpt-5-mini"}, Offline{})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Modes[0]
	if !m.CachedPrice || m.Total.BatchCachedUSD > m.Total.BatchUSD {
		t.Fatalf("gpt-5-mini: cached price %v, batch $%f, batch+cached $%f", m.CachedPrice, m.Total.BatchUSD, m.Total.BatchCachedUSD)
	}
	if cacheablePrefix(1023, 5000) != 0 || cacheablePrefix(1200, 1300) != 1152 || cacheablePrefix(2000, 1000) != 0 {
		t.Fatal("cacheablePrefix does not follow the 1,024-token minimum and 128-token steps")
	}
}

// The same sense under two spellings (whitespace differs, the prompt does not) renders one body twice: the
// offline estimate counts the repeat as served from the cache.
func TestOfflineCacheCountsRepeats(t *testing.T) {
	t.Parallel()
	words := []store.InputWord{{Word: "bank", Definitions: []store.InputDefinition{
		{PartOfSpeech: "noun", Text: "sloping land beside a body of water"},
		{PartOfSpeech: "noun", Text: "sloping land  beside a body of water"},
	}}}
	rep, err := Run(context.Background(), words, Options{Components: []string{"synonyms", "cefr_level"}, Modes: []string{synthesis.ModePacked}, Model: "gpt-4o-mini"}, Offline{})
	if err != nil {
		t.Fatal(err)
	}
	tot := rep.Modes[0].Total
	if tot.Requests != 2 || tot.CacheHits != 1 || tot.CacheSavedUSD*2-tot.BatchUSD > 1e-12 || tot.BatchUSD-tot.CacheSavedUSD*2 > 1e-12 {
		t.Fatalf("total %+v", tot)
	}
}

// With Floridify's database, present fields are not estimated and stored answers count as cache hits.
func TestDatabaseEstimate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl, db := testenv.Mongo(t)
	st := store.New(cl, db)
	wordID := store.WordID("en", "bank")
	if _, err := st.Collection(store.CollWords).InsertOne(ctx, store.Word{ID: wordID, Text: "bank", Languages: []string{"en"}, Version: 1}); err != nil {
		t.Fatal(err)
	}
	cefr := "B1"
	defs := []any{
		store.Definition{ID: bson.NewObjectID(), WordID: wordID, PartOfSpeech: "noun", Text: "sloping land", CEFRLevel: &cefr},
		store.Definition{ID: bson.NewObjectID(), WordID: wordID, PartOfSpeech: "noun", Text: "a financial institution"},
	}
	if _, err := st.Collection(store.CollDefinitions).InsertMany(ctx, defs); err != nil {
		t.Fatal(err)
	}
	comps := []string{"cefr_level", "pronunciation"}
	words := []store.InputWord{{Word: "bank"}}
	off, err := Run(ctx, []store.InputWord{{Word: "bank", Definitions: []store.InputDefinition{{PartOfSpeech: "noun", Text: "a financial institution"}}}},
		Options{Components: []string{"cefr_level"}, Modes: []string{synthesis.ModePacked}, Model: "gpt-4o-mini"}, Offline{})
	if err != nil || off.Modes[0].Total.Requests != 1 {
		t.Fatalf("offline: %v %v", off, err)
	}
	// Store an answer for the second sense's body, as an earlier job would have.
	in, _, _ := Offline{}.Inputs(ctx, []store.InputWord{{Word: "bank", Definitions: []store.InputDefinition{
		{PartOfSpeech: "noun", Text: "sloping land"}, {PartOfSpeech: "noun", Text: "a financial institution"}}}}, comps)
	planned, err := synthesis.Plan(in[0], synthesis.PlanOptions{Mode: synthesis.ModePacked, Model: "gpt-4o-mini", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	for _, p := range planned {
		if p.Target.Kind == store.TargetDefinition && p.Target.Defs[0].Text == "a financial institution" {
			hash = p.Rendered.Hash
		}
	}
	if _, err := st.Collection(store.CollRequests).InsertOne(ctx, bson.M{"_id": "earlier", "body_hash": hash, "state": store.StateSucceeded,
		"prompt_version": synthesis.PromptVersion, "result": `{"cefr_level":"B2"}`}); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, words, Options{Components: comps, Modes: []string{synthesis.ModePacked}, Model: "gpt-4o-mini"}, Database{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	tot := rep.Modes[0].Total
	// One definition misses cefr_level (and its body is answered already); the word misses its pronunciation.
	if rep.Source != "database" || rep.Words != 1 || rep.Definitions != 2 || tot.Requests != 2 || tot.CacheHits != 1 {
		t.Fatalf("report %+v, total %+v", rep, tot)
	}
}
