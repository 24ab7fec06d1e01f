// Package estimate prices a words file before it is spent. It plans and renders every request with the
// builder's own code (synthesis.Plan and synthesis.Render, so the bodies are byte for byte the ones the
// pipeline would store and upload), counts their input tokens with tiktoken's o200k_base as Render does,
// models their output tokens per component (synthesis.Component.OutputTokens), and prices both with
// internal/pricing at immediate, batch and, for the GPT-5 family, batch-with-cached-input rates.
//
// It is offline first: without a database every field of every submitted definition counts as missing, and
// the result cache is estimated from duplicate bodies within the file. Given Floridify's database, it plans
// against the stored fields (as enqueue does) and counts the bodies whose answer the cache already holds.
//
// Per-component figures of a packed request split its tokens over its components in proportion to their own
// contributions (synthesis.Part: rule line, schema and key for input; the modelled value for output); the
// shares of a request add up to the request exactly, so the component rows add up to the total.
package estimate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// Options steer an estimate.
type Options struct {
	Components []string // validated names
	Modes      []string
	Model      string // a model, or synthesis.ModelAuto for routing
}

// Report is an estimate for every mode asked.
type Report struct {
	Words       int      `json:"words"`
	Definitions int      `json:"definitions"`
	Skipped     []string `json:"skipped,omitempty"`
	Model       string   `json:"model"`
	Components  []string `json:"components"`
	// Source is "offline" (every field missing) or "database" (fields as stored).
	Source string `json:"source"`
	// CacheBasis says what the cache columns count.
	CacheBasis string       `json:"cache_basis"`
	Modes      []ModeReport `json:"modes"`
}

// ModeReport is one mode's estimate: the total and one line per component.
type ModeReport struct {
	Mode       string   `json:"mode"`
	Models     []string `json:"models"`
	Total      Line     `json:"total"`
	Components []Line   `json:"components"`
	// CachedPrice is false when no model of the mode has a batch cached-input price (BatchCachedUSD is then
	// the batch price).
	CachedPrice bool `json:"cached_price"`
}

// Line is the estimate of one component, or of the whole mode (Requests then counts each request once).
type Line struct {
	Component    string `json:"component,omitempty"`
	Requests     int    `json:"requests"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	// CachedInputTokens are input tokens prompt caching may serve (see cacheablePrefix); GPT-5 family only.
	CachedInputTokens int64   `json:"cached_input_tokens"`
	ImmediateUSD      float64 `json:"immediate_usd"`
	BatchUSD          float64 `json:"batch_usd"`
	BatchCachedUSD    float64 `json:"batch_cached_usd"`
	// CacheHits are requests the result cache answers; CacheSavedUSD their batch price.
	CacheHits     int     `json:"cache_hits"`
	CacheSavedUSD float64 `json:"cache_saved_usd"`
	// BatchUSDPer10k is BatchUSD scaled to 10,000 words of this file.
	BatchUSDPer10k float64 `json:"batch_usd_per_10k_words"`
}

// Planner gives the words to plan. Offline and Database implement it.
type Planner interface {
	// Inputs returns the words to plan, and words that cannot be estimated with the reason.
	Inputs(ctx context.Context, words []store.InputWord, comps []string) ([]synthesis.WordInput, []string, error)
	// Cached returns the body hashes among hashes whose answer the result cache holds already. Repeats within
	// the file are counted by Run.
	Cached(ctx context.Context, hashes []string) (map[string]bool, error)
	Source() string
	CacheBasis() string
}

// Run plans words in every mode of o and prices the requests.
func Run(ctx context.Context, words []store.InputWord, o Options, src Planner) (*Report, error) {
	if len(o.Modes) == 0 {
		o.Modes = synthesis.Modes()
	}
	if o.Model == "" {
		return nil, fmt.Errorf("no model")
	}
	inputs, skipped, err := src.Inputs(ctx, words, o.Components)
	if err != nil {
		return nil, err
	}
	r := &Report{Words: len(inputs), Skipped: skipped, Model: o.Model, Components: o.Components,
		Source: src.Source(), CacheBasis: src.CacheBasis()}
	for _, w := range inputs {
		r.Definitions += len(w.Defs)
	}
	for _, mode := range o.Modes {
		var all []synthesis.Planned
		for _, w := range inputs {
			planned, err := synthesis.Plan(w, synthesis.PlanOptions{Mode: mode, Model: o.Model, Components: o.Components})
			if err != nil {
				return nil, err
			}
			all = append(all, planned...)
		}
		hashes := make([]string, len(all))
		for i, p := range all {
			hashes[i] = p.Rendered.Hash
		}
		hits, err := src.Cached(ctx, hashes)
		if err != nil {
			return nil, err
		}
		r.Modes = append(r.Modes, price(mode, all, hits, o.Components, len(inputs)))
	}
	return r, nil
}

// cacheablePrefix is how much of a prompt OpenAI's prompt caching can serve: nothing under 1,024 tokens,
// then the static prefix in steps of 128 tokens. It is an upper bound: it assumes every request after the
// first with the same prefix hits the cache, which the Batch API does not promise.
func cacheablePrefix(static, input int64) int64 {
	if input < 1024 || static < 1024 {
		return 0
	}
	return 1024 + (static-1024)/128*128
}

// staticKey names a request's static prefix (developer message and schema): same model, kind, listed senses
// and components.
func staticKey(p synthesis.Planned) string {
	n := 0
	if p.Target.Kind == store.TargetWord {
		n = len(p.Target.Defs)
	}
	return fmt.Sprintf("%s|%s|%d|%s", p.Model, p.Target.Kind, n, strings.Join(p.Target.Components, ","))
}

func price(mode string, planned []synthesis.Planned, hits map[string]bool, comps []string, words int) ModeReport {
	m := ModeReport{Mode: mode, Total: Line{}}
	lines := map[string]*Line{}
	for _, c := range comps {
		lines[c] = &Line{Component: c}
	}
	seenPrefix := map[string]bool{}
	seenBody := map[string]bool{}
	models := map[string]bool{}
	for _, p := range planned {
		models[p.Model] = true
		pr, _ := pricing.Lookup(p.Model)
		if pr.BatchCached > 0 {
			m.CachedPrice = true
		}
		var cached int64
		if k := staticKey(p); seenPrefix[k] && pr.BatchCached > 0 {
			cached = cacheablePrefix(p.Rendered.StaticTokens, p.Rendered.InputTokens)
		} else {
			seenPrefix[k] = true
		}
		// A repeat of a body is answered from the cache once its first occurrence has succeeded.
		hit := hits[p.Rendered.Hash] || seenBody[p.Rendered.Hash]
		seenBody[p.Rendered.Hash] = true
		in, out := p.Rendered.InputTokens, p.Rendered.OutputTokens
		m.Total.add(p.Model, in, cached, out, hit)
		m.Total.Requests++
		// A component's cached tokens are its share of the request's, by its share of the input.
		var given int64
		for i, part := range p.Rendered.Parts {
			pc := cached * part.InputTokens / max(in, 1)
			if i == len(p.Rendered.Parts)-1 {
				pc = cached - given
			}
			given += pc
			l := lines[part.Component]
			if l == nil {
				l = &Line{Component: part.Component}
				lines[part.Component] = l
			}
			l.add(p.Model, part.InputTokens, pc, part.OutputTokens, hit)
			l.Requests++
		}
	}
	for _, c := range comps {
		m.Components = append(m.Components, *lines[c])
	}
	for k := range models {
		m.Models = append(m.Models, k)
	}
	slices.Sort(m.Models)
	if words > 0 {
		m.Total.BatchUSDPer10k = m.Total.BatchUSD * 10000 / float64(words)
		for i := range m.Components {
			m.Components[i].BatchUSDPer10k = m.Components[i].BatchUSD * 10000 / float64(words)
		}
	}
	return m
}

func (l *Line) add(model string, in, cached, out int64, hit bool) {
	u := store.Usage{InputTokens: in, OutputTokens: out}
	l.InputTokens += in
	l.OutputTokens += out
	l.CachedInputTokens += cached
	l.ImmediateUSD += pricing.Immediate(model, u)
	b := pricing.Batch(model, u)
	l.BatchUSD += b
	u.CachedTokens = cached
	l.BatchCachedUSD += pricing.Batch(model, u)
	if hit {
		l.CacheHits++
		l.CacheSavedUSD += b
	}
}

// Offline plans the words of a JSONL file as they are: every field missing, nothing stored.
type Offline struct{}

func (Offline) Source() string { return "offline" }

func (Offline) CacheBasis() string {
	return "repeated bodies within the file (served from the cache when enqueued after the first has succeeded: by a later job or a re-run, not within one job)"
}

// Inputs gives each word the ids enqueue would give it, and its definitions in the order enqueue loads them.
func (Offline) Inputs(_ context.Context, words []store.InputWord, _ []string) ([]synthesis.WordInput, []string, error) {
	var out []synthesis.WordInput
	var skipped []string
	idx := map[store.ObjectID]int{}
	for _, w := range words {
		if len(w.Definitions) == 0 {
			skipped = append(skipped, w.Word+": no definitions in the file (estimate against Floridify's database to include it)")
			continue
		}
		lang := cmp.Or(w.Language, "en")
		id := store.WordID(lang, w.Word)
		i, ok := idx[id]
		if !ok {
			i = len(out)
			idx[id] = i
			out = append(out, synthesis.WordInput{WordID: id, Word: w.Word, Language: lang})
		}
		out[i].Defs = appendDefs(out[i].Defs, id, w.Definitions)
	}
	for i := range out {
		sortDefs(out[i].Defs)
	}
	return out, skipped, nil
}

// Cached knows no stored answer offline.
func (Offline) Cached(context.Context, []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}

// appendDefs adds submitted definitions, with the ids enqueue gives them, skipping ones already there.
func appendDefs(defs []store.Definition, wordID store.ObjectID, in []store.InputDefinition) []store.Definition {
	for _, d := range in {
		id := store.DefinitionID(wordID, d.PartOfSpeech, d.Text)
		if slices.ContainsFunc(defs, func(x store.Definition) bool { return x.ID == id }) {
			continue
		}
		defs = append(defs, store.Definition{ID: id, WordID: wordID, PartOfSpeech: d.PartOfSpeech, Text: d.Text})
	}
	return defs
}

// sortDefs orders definitions by _id, as enqueue loads them.
func sortDefs(defs []store.Definition) {
	slices.SortFunc(defs, func(a, b store.Definition) int { return strings.Compare(a.ID.Hex(), b.ID.Hex()) })
}

// Database plans against Floridify's collections: the stored fields decide what is missing, and the result
// cache is the synthesis_requests collection.
type Database struct {
	Store *store.Store
}

func (Database) Source() string { return "database" }

func (Database) CacheBasis() string {
	return "bodies whose answer synthesis_requests already holds (served without being sent), and repeated bodies within the file"
}

// chunk bounds the ids of one query, as enqueue's input chunks do.
const chunk = 1000

// Inputs finds each word in Floridify (by text and language) with all its stored definitions, adds the
// submitted definitions it does not have yet (as enqueue would insert them), and loads the words' state.
func (db Database) Inputs(ctx context.Context, words []store.InputWord, comps []string) ([]synthesis.WordInput, []string, error) {
	var out []synthesis.WordInput
	var skipped []string
	for start := 0; start < len(words); start += chunk {
		part := words[start:min(start+chunk, len(words))]
		texts := make([]string, len(part))
		for i, w := range part {
			texts[i] = w.Word
		}
		known, err := db.Store.WordIDsByText(ctx, texts)
		if err != nil {
			return nil, nil, err
		}
		idx := map[store.ObjectID]int{}
		var ins []synthesis.WordInput
		var submitted [][]store.InputDefinition
		for _, w := range part {
			lang := w.Lang()
			id, ok := known[w.Ref()]
			if !ok {
				if len(w.Definitions) == 0 {
					skipped = append(skipped, w.Word+": not in Floridify")
					continue
				}
				id = store.WordID(lang, w.Word)
			}
			i, seen := idx[id]
			if !seen {
				i = len(ins)
				idx[id] = i
				ins = append(ins, synthesis.WordInput{WordID: id, Word: w.Word, Language: lang})
				submitted = append(submitted, nil)
			}
			submitted[i] = append(submitted[i], w.Definitions...)
		}
		ids := make([]store.ObjectID, len(ins))
		for i, w := range ins {
			ids[i] = w.WordID
		}
		defs, err := db.Store.SortedDefinitionsOfWords(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range defs {
			if i, ok := idx[d.WordID]; ok {
				ins[i].Defs = append(ins[i].Defs, d)
			}
		}
		states, err := pipeline.LoadWordStates(ctx, db.Store, ids, comps)
		if err != nil {
			return nil, nil, err
		}
		for i := range ins {
			ins[i].Defs = appendDefs(ins[i].Defs, ins[i].WordID, submitted[i])
			sortDefs(ins[i].Defs)
			ins[i].State = states[ins[i].WordID]
			if len(ins[i].Defs) == 0 {
				skipped = append(skipped, ins[i].Word+": no definitions")
				continue
			}
			out = append(out, ins[i])
		}
	}
	return out, skipped, nil
}

// Cached finds the hashes with a succeeded request of the current prompt version.
func (db Database) Cached(ctx context.Context, hashes []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(hashes); start += chunk {
		part := hashes[start:min(start+chunk, len(hashes))]
		hits, err := db.Store.SucceededBodyHashes(ctx, part, synthesis.PromptVersion)
		if err != nil {
			return nil, err
		}
		for h := range hits {
			out[h] = true
		}
	}
	return out, nil
}
