package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

type testBundle struct {
	ctx    context.Context
	d      *Deps
	client openai.Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cl, db := testenv.Mongo(t)
	st := store.New(cl, db)
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	_, url := testenv.Emulator(t, emulator.Config{Seed: 11})
	return &testBundle{ctx: ctx, d: &Deps{Store: st}, client: openai.NewClient(option.WithBaseURL(url), option.WithAPIKey("sk-test"))}
}

var testWords = []store.InputWord{
	{Word: "bank", Definitions: []store.InputDefinition{
		{PartOfSpeech: "noun", Text: "sloping land (especially the slope beside a body of water)"},
		{PartOfSpeech: "noun", Text: "a financial institution that accepts deposits and channels the money into lending activities"},
		{PartOfSpeech: "verb", Text: "tip laterally"},
	}},
	{Word: "light", Definitions: []store.InputDefinition{
		{PartOfSpeech: "noun", Text: "electromagnetic radiation that can produce a visual sensation"},
		{PartOfSpeech: "adjective", Text: "of comparatively little physical weight or density"},
	}},
}

func newJob(id, mode string, comps []string) *store.Job {
	return &store.Job{ID: id, Components: comps, Mode: mode, Model: "gpt-4o-mini", Status: store.JobExpanding}
}

// answerPending answers the job's pending requests the way a batch would: each body goes to the emulator's
// chat completions through the openai-go client, and the answers are settled and applied through the same
// Decode -> Writes -> writeFloridify path as apply-results.
func (b *testBundle) answerPending(t *testing.T, jobID string) int {
	t.Helper()
	cur, err := b.d.Store.Collection(store.CollRequests).Find(b.ctx, bson.M{"job_ids": jobID, "state": store.StatePending})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []store.Request
	if err := cur.All(b.ctx, &reqs); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	bodies, err := b.d.Store.BodiesOf(b.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	w := synthesis.NewWrites(time.Now().UTC())
	for i := range reqs {
		r := &reqs[i]
		cc, err := b.client.Chat.Completions.New(b.ctx, openai.ChatCompletionNewParams{}, option.WithRequestBody("application/json", []byte(bodies[r.ID])))
		if err != nil {
			t.Fatal(err)
		}
		content := cc.Choices[0].Message.Content
		p, err := synthesis.Decode(r.Kind, r.Word, len(r.DefinitionIDs), r.Components, content)
		if err != nil {
			t.Fatalf("request %s %v: %v", r.ID, r.Components, err)
		}
		if err := w.Add(applyInput(r), p); err != nil {
			t.Fatal(err)
		}
		if _, err := b.d.Store.Collection(store.CollRequests).UpdateOne(b.ctx, bson.M{"_id": r.ID}, bson.M{"$set": bson.M{
			"state": store.StateSucceeded, "result": content, "attempts": 1, "applied": true,
			"usage": store.Usage{InputTokens: cc.Usage.PromptTokens, OutputTokens: cc.Usage.CompletionTokens}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.d.writeFloridify(b.ctx, w); err != nil {
		t.Fatal(err)
	}
	return len(reqs)
}

func (b *testBundle) expand(t *testing.T, job *store.Job, words []store.InputWord) {
	t.Helper()
	if _, _, ierrs, err := b.d.expandChunk(b.ctx, job, words); err != nil || len(ierrs) > 0 {
		t.Fatalf("expand %s: %v %v", job.ID, err, ierrs)
	}
}

func all[T any](t *testing.T, ctx context.Context, c *mongo.Collection, filter bson.M) []T {
	t.Helper()
	cur, err := c.Find(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func docMap(d bson.D) bson.M {
	m := bson.M{}
	for _, e := range d {
		m[e.Key] = e.Value
	}
	return m
}

// shape lists a document's field paths with their BSON types: values differ between runs, shapes may not.
func shape(v any, path string, out map[string]bool) {
	switch x := v.(type) {
	case bson.D:
		for _, e := range x {
			shape(e.Value, path+"."+e.Key, out)
		}
	case bson.A:
		if len(x) == 0 {
			out[path+"=[]"] = true
		}
		for _, e := range x {
			shape(e, path+"[]", out)
		}
	default:
		out[fmt.Sprintf("%s:%T", path, v)] = true
	}
}

// shapes returns the distinct document shapes of a collection.
func shapes(t *testing.T, ctx context.Context, c *mongo.Collection) []string {
	t.Helper()
	distinct := map[string]bool{}
	for _, doc := range all[bson.D](t, ctx, c, bson.M{}) {
		m := map[string]bool{}
		shape(doc, "", m)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		distinct[strings.Join(keys, " ")] = true
	}
	out := make([]string, 0, len(distinct))
	for k := range distinct {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestModesWriteIdenticalShapes runs the same words with every component through each mode, answers the
// requests with the emulator, and compares what lands in Floridify's collections.
func TestModesWriteIdenticalShapes(t *testing.T) {
	t.Parallel()
	got := map[string]map[string][]string{}
	for _, mode := range synthesis.Modes() {
		b := setup(t)
		job := newJob("job-"+mode, mode, synthesis.Names())
		b.expand(t, job, testWords)
		if n := b.answerPending(t, job.ID); n == 0 {
			t.Fatalf("%s: no request", mode)
		}
		st := b.d.Store
		got[mode] = map[string][]string{}
		for _, c := range []*mongo.Collection{st.Collection(store.CollDefinitions), st.Collection(store.CollExamples), st.Collection(store.CollPronunciations), st.Collection(store.CollFacts), st.Collection(store.CollDictionaryEntries)} {
			s := shapes(t, b.ctx, c)
			if len(s) != 1 {
				t.Fatalf("%s: %s documents have %d different shapes:\n%s", mode, c.Name(), len(s), strings.Join(s, "\n"))
			}
			got[mode][c.Name()] = s
		}
		// Every field is present now: submitting the same words again asks for nothing.
		again := newJob("again-"+mode, mode, synthesis.Names())
		b.expand(t, again, testWords)
		if n, _ := st.Collection(store.CollRequests).CountDocuments(b.ctx, bson.M{"job_ids": again.ID}); n != 0 {
			t.Fatalf("%s: second run created %d requests", mode, n)
		}
	}
	for _, mode := range synthesis.Modes()[1:] {
		for coll, s := range got[synthesis.Modes()[0]] {
			if !slices.Equal(got[mode][coll], s) {
				t.Fatalf("%s writes %s as\n%v\nbut %s as\n%v", mode, coll, got[mode][coll], synthesis.Modes()[0], s)
			}
		}
	}
}

// TestFloridifyShape checks each applied field against Floridify's model (reference/floridify-data-model.md):
// names, BSON types, enums, links both ways.
func TestFloridifyShape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := newJob("job-shape", synthesis.ModePacked, synthesis.Names())
	b.expand(t, job, testWords)
	b.answerPending(t, job.ID)
	ctx, st := b.ctx, b.d.Store
	in := func(v any, xs ...string) bool { s, ok := v.(string); return ok && slices.Contains(xs, s) }
	strList := func(v any) bool {
		a, ok := v.(bson.A)
		if !ok || len(a) == 0 {
			return false
		}
		for _, x := range a {
			if _, ok := x.(string); !ok {
				return false
			}
		}
		return true
	}
	objs := func(v any) []bson.M {
		a, _ := v.(bson.A)
		var out []bson.M
		for _, x := range a {
			d, ok := x.(bson.D)
			if !ok {
				t.Fatalf("list element %T, want a document", x)
			}
			out = append(out, docMap(d))
		}
		if len(out) == 0 {
			t.Fatalf("empty list")
		}
		return out
	}
	defs := all[bson.M](t, ctx, st.Collection(store.CollDefinitions), bson.M{})
	if len(defs) != 5 {
		t.Fatalf("%d definitions", len(defs))
	}
	for _, d := range defs {
		if !strList(d["synonyms"]) || !strList(d["antonyms"]) {
			t.Fatalf("synonyms/antonyms: %v / %v", d["synonyms"], d["antonyms"])
		}
		if !in(d["cefr_level"], "A1", "A2", "B1", "B2", "C1", "C2") || !in(d["language_register"], "formal", "informal", "neutral", "slang", "technical") {
			t.Fatalf("cefr_level %v, language_register %v", d["cefr_level"], d["language_register"])
		}
		fb, ok := d["frequency_band"].(int32)
		if fb64, is64 := d["frequency_band"].(int64); is64 {
			fb, ok = int32(fb64), true
		}
		if !ok || fb < 1 || fb > 5 {
			t.Fatalf("frequency_band %v (%T)", d["frequency_band"], d["frequency_band"])
		}
		if _, ok := d["domain"].(string); !ok {
			t.Fatalf("domain %v", d["domain"])
		}
		if !in(d["region"], "US", "UK", "AU", "CA", "IN", "ZA", "IE", "NZ") {
			t.Fatalf("region %v", d["region"])
		}
		for _, g := range objs(d["grammar_patterns"]) {
			if _, ok := g["pattern"].(string); !ok || len(g) != 2 {
				t.Fatalf("grammar pattern %v", g)
			}
			if _, ok := g["description"]; !ok {
				t.Fatalf("grammar pattern without description: %v", g)
			}
		}
		for _, c := range objs(d["collocations"]) {
			f, ok := c["frequency"].(float64)
			if _, txt := c["text"].(string); !txt || !ok || f < 0 || f > 1 || !in(c["type"], "adjective", "verb", "noun", "adverb", "preposition") || len(c) != 3 {
				t.Fatalf("collocation %v", c)
			}
		}
		for _, n := range objs(d["usage_notes"]) {
			if _, txt := n["text"].(string); !txt || !in(n["type"], "grammar", "confusion", "regional", "register", "error") || len(n) != 2 {
				t.Fatalf("usage note %v", n)
			}
		}
		for _, f := range objs(d["word_forms"]) {
			if _, txt := f["text"].(string); !txt || len(f) != 2 ||
				!in(f["form_type"], "plural", "past", "past_participle", "present_participle", "comparative", "superlative", "variant") {
				t.Fatalf("word form %v", f)
			}
		}
		ids, _ := d["example_ids"].(bson.A)
		if len(ids) == 0 {
			t.Fatalf("definition %v has no examples", d["_id"])
		}
		for _, id := range ids {
			var ex bson.M
			if err := st.Collection(store.CollExamples).FindOne(ctx, bson.M{"_id": id}).Decode(&ex); err != nil {
				t.Fatalf("example %v: %v", id, err)
			}
			mi, _ := ex["model_info"].(bson.D)
			if ex["definition_id"] != d["_id"] || ex["type"] != "generated" || docMap(mi)["name"] != "gpt-4o-mini" {
				t.Fatalf("example %v", ex)
			}
		}
	}
	entries := all[bson.M](t, ctx, st.Collection(store.CollDictionaryEntries), bson.M{})
	if len(entries) != 2 {
		t.Fatalf("%d dictionary entries, want one synthesis entry per word", len(entries))
	}
	for _, e := range entries {
		if e["provider"] != store.ProviderSynthesis {
			t.Fatalf("entry provider %v", e["provider"])
		}
		var p bson.M
		if err := st.Collection(store.CollPronunciations).FindOne(ctx, bson.M{"_id": e["pronunciation_id"]}).Decode(&p); err != nil {
			t.Fatalf("pronunciation_id %v: %v", e["pronunciation_id"], err)
		}
		if _, ok := p["phonetic"].(string); !ok || p["word_id"] != e["word_id"] {
			t.Fatalf("pronunciation %v", p)
		}
		if _, ok := p["ipa"].(string); !ok {
			t.Fatalf("ipa %v", p["ipa"])
		}
		factIDs, _ := e["fact_ids"].(bson.A)
		if len(factIDs) == 0 {
			t.Fatal("no facts linked")
		}
		for _, id := range factIDs {
			var f bson.M
			if err := st.Collection(store.CollFacts).FindOne(ctx, bson.M{"_id": id}).Decode(&f); err != nil {
				t.Fatalf("fact %v: %v", id, err)
			}
			if _, ok := f["content"].(string); !ok || f["word_id"] != e["word_id"] ||
				!in(f["category"], "etymology", "usage", "cultural", "linguistic", "historical") {
				t.Fatalf("fact %v", f)
			}
		}
		ety, ok := e["etymology"].(bson.D)
		if !ok {
			t.Fatalf("etymology %v", e["etymology"])
		}
		em := docMap(ety)
		if _, ok := em["text"].(string); !ok || !strList(em["root_words"]) {
			t.Fatalf("etymology %v", em)
		}
		for _, k := range []string{"origin_language", "first_known_use", "model_info"} {
			if _, ok := em[k]; !ok {
				t.Fatalf("etymology without %s: %v", k, em)
			}
		}
	}
}

// TestResultCacheServesTheSameSenseOnce: the same sense text under two providers is paid once. The second
// definition's request is created already answered, and applied at once.
func TestResultCacheServesTheSameSenseOnce(t *testing.T) {
	t.Parallel()
	comps := []string{"cefr_level", "register"} // no counts: the body depends on the sense alone
	word := []store.InputWord{{Word: "bank", Definitions: testWords[0].Definitions[:1]}}
	run := func(t *testing.T, noCache bool, corrupt string) (*testBundle, store.Definition, store.Definition, store.Request) {
		b := setup(t)
		ctx, st := b.ctx, b.d.Store
		b.expand(t, newJob("job1", synthesis.ModePacked, comps), word)
		if n := b.answerPending(t, "job1"); n != 1 {
			t.Fatalf("first job: %d requests", n)
		}
		if corrupt != "" {
			if _, err := st.Collection(store.CollRequests).UpdateMany(ctx, bson.M{"job_ids": "job1"}, bson.M{"$set": bson.M{"result": corrupt}}); err != nil {
				t.Fatal(err)
			}
		}
		first := all[store.Definition](t, ctx, st.Collection(store.CollDefinitions), bson.M{})[0]
		// Another provider brings the same sense.
		second := store.Definition{ID: bson.NewObjectID(), WordID: first.WordID, PartOfSpeech: first.PartOfSpeech, Text: first.Text,
			Synonyms: []string{}, Providers: []string{"wiktionary"}}
		if _, err := st.Collection(store.CollDefinitions).InsertOne(ctx, second); err != nil {
			t.Fatal(err)
		}
		job2 := newJob("job2", synthesis.ModePacked, comps)
		job2.NoCache = noCache
		b.expand(t, job2, []store.InputWord{{Word: "bank"}})
		reqs := all[store.Request](t, ctx, st.Collection(store.CollRequests), bson.M{"job_ids": "job2"})
		if len(reqs) != 1 || !slices.Equal(reqs[0].DefinitionIDs, []bson.ObjectID{second.ID}) {
			t.Fatalf("second job: %+v", reqs)
		}
		var got store.Definition
		if err := st.Collection(store.CollDefinitions).FindOne(ctx, bson.M{"_id": second.ID}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return b, first, got, reqs[0]
	}

	t.Run("Cached", func(t *testing.T) {
		t.Parallel()
		b, first, second, r := run(t, false, "")
		src := all[store.Request](t, b.ctx, b.d.Store.Collection(store.CollRequests), bson.M{"job_ids": "job1"})
		if r.State != store.StateSucceeded || !r.Applied || r.CachedFrom != src[0].ID || r.Attempts != 0 ||
			r.Usage != (store.Usage{}) || r.CostUSD != 0 || r.Result == "" {
			t.Fatalf("cached request: %+v", r)
		}
		if second.CEFRLevel == nil || *second.CEFRLevel != *first.CEFRLevel || *second.LanguageRegister != *first.LanguageRegister {
			t.Fatalf("second definition got %v/%v, first has %v/%v", second.CEFRLevel, second.LanguageRegister, *first.CEFRLevel, *first.LanguageRegister)
		}
	})
	t.Run("NoCache", func(t *testing.T) {
		t.Parallel()
		_, _, second, r := run(t, true, "")
		if r.State != store.StatePending || r.CachedFrom != "" || r.Result != "" || second.CEFRLevel != nil {
			t.Fatalf("--no-cache: request %+v, cefr %v", r, second.CEFRLevel)
		}
	})
	t.Run("RejectedAnswerIsSent", func(t *testing.T) {
		t.Parallel()
		// A stored answer today's rules reject (a register Floridify cannot store) writes nothing; the request
		// goes out after all.
		_, _, second, r := run(t, false, `{"cefr_level":"B1","register":"poetic"}`)
		if r.State != store.StatePending || r.CachedFrom != "" || r.Result != "" || !strings.Contains(r.LastError, "poetic") {
			t.Fatalf("request %+v", r)
		}
		if second.CEFRLevel != nil || second.LanguageRegister != nil {
			t.Fatalf("rejected answer was written: %v / %v", second.CEFRLevel, second.LanguageRegister)
		}
	})
}

// TestForceRegenerates: --force replaces generated examples (literature examples stay), facts and the
// pronunciation, removing what it replaces; it never serves the old answer from the cache.
func TestForceRegenerates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, st := b.ctx, b.d.Store
	comps := []string{"examples", "pronunciation", "facts"}
	word := []store.InputWord{{Word: "bank", Definitions: testWords[0].Definitions[:1]}}
	b.expand(t, newJob("job1", synthesis.ModePacked, comps), word)
	b.answerPending(t, "job1")
	def := all[store.Definition](t, ctx, st.Collection(store.CollDefinitions), bson.M{})[0]
	oldExamples := def.ExampleIDs
	lit := store.Example{ID: bson.NewObjectID(), DefinitionID: def.ID, Text: "A quotation from a novel.", Type: "literature", Version: 1}
	if _, err := st.Collection(store.CollExamples).InsertOne(ctx, lit); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Collection(store.CollDefinitions).UpdateOne(ctx, bson.M{"_id": def.ID}, bson.M{"$push": bson.M{"example_ids": lit.ID}}); err != nil {
		t.Fatal(err)
	}
	entry := all[store.DictionaryEntry](t, ctx, st.Collection(store.CollDictionaryEntries), bson.M{})[0]

	forced := newJob("job2", synthesis.ModePacked, comps)
	forced.Force = true
	b.expand(t, forced, word)
	if n := b.answerPending(t, "job2"); n != 2 {
		t.Fatalf("forced job sent %d requests, want 2 (none from the cache)", n)
	}

	if err := st.Collection(store.CollDefinitions).FindOne(ctx, bson.M{"_id": def.ID}).Decode(&def); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(def.ExampleIDs, lit.ID) {
		t.Fatal("literature example unlinked")
	}
	for _, id := range oldExamples {
		if slices.Contains(def.ExampleIDs, id) {
			t.Fatalf("old generated example %s still linked", id.Hex())
		}
		if n, _ := st.Collection(store.CollExamples).CountDocuments(ctx, bson.M{"_id": id}); n != 0 {
			t.Fatalf("old generated example %s not removed", id.Hex())
		}
	}
	if n, _ := st.Collection(store.CollExamples).CountDocuments(ctx, bson.M{"_id": lit.ID}); n != 1 {
		t.Fatal("literature example removed")
	}
	if n, _ := st.Collection(store.CollExamples).CountDocuments(ctx, bson.M{}); int(n) != len(def.ExampleIDs) {
		t.Fatalf("%d examples, %d linked", n, len(def.ExampleIDs))
	}

	var now store.DictionaryEntry
	if err := st.Collection(store.CollDictionaryEntries).FindOne(ctx, bson.M{"_id": entry.ID}).Decode(&now); err != nil {
		t.Fatal(err)
	}
	if *now.PronunciationID == *entry.PronunciationID {
		t.Fatal("pronunciation not regenerated")
	}
	if n, _ := st.Collection(store.CollPronunciations).CountDocuments(ctx, bson.M{}); n != 1 {
		t.Fatalf("%d pronunciations, want the new one only", n)
	}
	for _, id := range entry.FactIDs {
		if slices.Contains(now.FactIDs, id) {
			t.Fatal("old fact still linked")
		}
	}
	if n, _ := st.Collection(store.CollFacts).CountDocuments(ctx, bson.M{}); int(n) != len(now.FactIDs) {
		t.Fatalf("%d facts, %d linked", n, len(now.FactIDs))
	}
}

// TestWordComponentsInFlightAreNotAskedTwice: a word request names the word's definitions, so a second job
// finds it in flight (through the definition_ids index), follows it, and asks only what it lacks.
func TestWordComponentsInFlightAreNotAskedTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	word := testWords[:1]
	b.expand(t, newJob("job1", synthesis.ModePacked, []string{"pronunciation"}), word)
	b.expand(t, newJob("job2", synthesis.ModePacked, []string{"pronunciation", "etymology"}), word)
	reqs := all[store.Request](t, b.ctx, b.d.Store.Collection(store.CollRequests), bson.M{"job_ids": "job2"})
	if len(reqs) != 2 {
		t.Fatalf("job2 has %d requests, want its own and the one it follows", len(reqs))
	}
	for _, r := range reqs {
		switch {
		case slices.Equal(r.Components, []string{"pronunciation"}):
			if !slices.Equal(r.JobIDs, []string{"job1", "job2"}) {
				t.Fatalf("followed request: jobs %v", r.JobIDs)
			}
		case slices.Equal(r.Components, []string{"etymology"}):
			if len(r.DefinitionIDs) != 3 || r.Kind != store.TargetWord {
				t.Fatalf("word request: %+v", r)
			}
		default:
			t.Fatalf("unexpected request %v", r.Components)
		}
	}
}
