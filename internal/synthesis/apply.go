package synthesis

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/floridify/batchsynth/internal/store"
)

// Parsed is a validated answer: per definition (in request order) component -> value, and word components.
type Parsed struct {
	Defs []map[string]any
	Word map[string]any
}

// Decode validates a model's JSON content for a request of kind over nDefs definitions and the given
// components. Any invalid part fails the whole attempt: a request is applied entirely or not at all.
func Decode(kind, word string, nDefs int, compNames []string, content string) (*Parsed, error) {
	comps, err := components(compNames)
	if err != nil {
		return nil, err
	}
	top, err := fields([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("content is not a JSON object: %v", err)
	}
	s := Sense{Word: word}
	p := &Parsed{Word: map[string]any{}}
	parseDef := func(obj map[string][]byte, where string) (map[string]any, error) {
		vals := map[string]any{}
		for _, c := range comps {
			if c.Level != DefinitionLevel {
				continue
			}
			raw, ok := obj[c.Name]
			if !ok {
				return nil, fmt.Errorf("%s: missing %q", where, c.Name)
			}
			v, err := c.Parse(json.RawMessage(raw), s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			vals[c.Name] = v
		}
		return vals, nil
	}
	hasDef := false
	for _, c := range comps {
		if c.Level == DefinitionLevel {
			hasDef = true
		}
	}
	switch kind {
	case store.TargetDefinition:
		vals, err := parseDef(top, "content")
		if err != nil {
			return nil, err
		}
		p.Defs = []map[string]any{vals}
	case store.TargetWord:
		if hasDef {
			senses, err := elements(top["senses"])
			if err != nil {
				return nil, fmt.Errorf("senses: want a list of objects: %v", err)
			}
			if len(senses) != nDefs {
				return nil, fmt.Errorf("senses: want %d entries, got %d", nDefs, len(senses))
			}
			for i, raw := range senses {
				obj, err := fields(raw)
				if err != nil {
					return nil, fmt.Errorf("senses: want a list of objects: %v", err)
				}
				vals, err := parseDef(obj, fmt.Sprintf("senses[%d]", i))
				if err != nil {
					return nil, err
				}
				p.Defs = append(p.Defs, vals)
			}
		}
	default:
		return nil, fmt.Errorf("unknown request kind %q", kind)
	}
	for _, c := range comps {
		if c.Level != WordLevel {
			continue
		}
		raw, ok := top[c.Name]
		if !ok {
			return nil, fmt.Errorf("content: missing %q", c.Name)
		}
		v, err := c.Parse(json.RawMessage(raw), s)
		if err != nil {
			return nil, err
		}
		p.Word[c.Name] = v
	}
	return p, nil
}

// Writes accumulates the Floridify writes of applied requests, as typed values: store.WriteFloridify sends
// them as a few bulk writes.
type Writes struct {
	Now time.Time

	// per request being applied
	reqID string
	model string

	out     store.FloridifyWrites
	defs    map[store.ObjectID]*store.DefinitionWrite
	entries map[store.ObjectID]*store.EntryWrite

	Requests int
}

// NewWrites starts an empty set of writes stamped with now.
func NewWrites(now time.Time) *Writes {
	return &Writes{Now: now, out: store.FloridifyWrites{Now: now},
		defs: map[store.ObjectID]*store.DefinitionWrite{}, entries: map[store.ObjectID]*store.EntryWrite{}}
}

// Floridify returns the accumulated writes, for store.WriteFloridify.
func (w *Writes) Floridify() *store.FloridifyWrites { return &w.out }

// ApplyInput is the part of a request that applying needs.
type ApplyInput struct {
	RequestID     string
	Model         string
	Force         bool
	WordID        store.ObjectID
	DefinitionIDs []store.ObjectID
}

// Add records the writes of one request's parsed answer. Writes are keyed by request id (deterministic
// document ids), so applying the same answer twice writes the same documents.
func (w *Writes) Add(in ApplyInput, p *Parsed) error {
	if len(p.Defs) > 0 && len(p.Defs) != len(in.DefinitionIDs) {
		return fmt.Errorf("request %s: %d answers for %d definitions", in.RequestID, len(p.Defs), len(in.DefinitionIDs))
	}
	if len(p.Word) > 0 && in.WordID.IsZero() {
		return fmt.Errorf("request %s: word-level answer without a word id", in.RequestID)
	}
	w.reqID, w.model = in.RequestID, in.Model
	w.Requests++
	for i, vals := range p.Defs {
		def := DefRef{ID: in.DefinitionIDs[i]}
		for _, name := range sortedKeys(vals) {
			c := byName[name]
			before := 0
			if d := w.defs[def.ID]; d != nil {
				before = len(d.AddExamples)
			}
			c.ApplyDef(vals[name], def, w)
			if in.Force && name == "examples" {
				d := w.def(def.ID)
				d.KeepExamples = store.SetTo(append(d.KeepExamples.Value, d.AddExamples[before:]...))
			}
		}
	}
	for _, name := range sortedKeys(p.Word) {
		byName[name].ApplyWord(p.Word[name], in, w)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return sortComponents(names)
}

// def returns the update of definition id, starting it the first time.
func (w *Writes) def(id store.ObjectID) *store.DefinitionWrite {
	d := w.defs[id]
	if d == nil {
		d = &store.DefinitionWrite{ID: id}
		w.defs[id] = d
		w.out.Definitions = append(w.out.Definitions, d)
	}
	return d
}

func (w *Writes) modelInfo() *store.ModelInfo {
	return &store.ModelInfo{Name: w.model, Confidence: 1.0, GenerationCount: 1, TopP: 1, LastGenerated: w.Now}
}

// docID derives a document _id from its kind, the request and its place in the answer, so a re-run upserts
// the same document.
func docID(kind, requestID string, owner store.ObjectID, i int) store.ObjectID {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d", kind, requestID, owner.Hex(), i)))
	var id store.ObjectID
	copy(id[:], h[:12])
	return id
}

// ExampleID derives an example's _id from the request and position, so a re-run upserts the same document.
func ExampleID(requestID string, defID store.ObjectID, i int) store.ObjectID {
	return docID("example", requestID, defID, i)
}

// PronunciationID derives the _id of the pronunciation a request creates for a word.
func PronunciationID(requestID string, wordID store.ObjectID) store.ObjectID {
	return docID("pronunciation", requestID, wordID, 0)
}

// FactID derives the _id of the i-th fact a request creates for a word.
func FactID(requestID string, wordID store.ObjectID, i int) store.ObjectID {
	return docID("fact", requestID, wordID, i)
}

func (w *Writes) addExamples(def store.ObjectID, texts []string) {
	d := w.def(def)
	for i, text := range texts {
		id := ExampleID(w.reqID, def, i)
		d.AddExamples = append(d.AddExamples, id)
		w.out.Examples = append(w.out.Examples, store.Example{
			ID: id, DefinitionID: def, Text: text, Type: "generated", ModelInfo: w.modelInfo(),
			CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1,
		})
	}
}

// entry returns the upsert of word's synthesis entry, starting it the first time.
func (w *Writes) entry(word store.ObjectID) *store.EntryWrite {
	e := w.entries[word]
	if e == nil {
		e = &store.EntryWrite{WordID: word}
		w.entries[word] = e
		w.out.Entries = append(w.out.Entries, e)
	}
	return e
}

func (w *Writes) setPronunciation(in ApplyInput, v pronunciationValue) {
	id := PronunciationID(in.RequestID, in.WordID)
	w.out.Pronunciations = append(w.out.Pronunciations, store.Pronunciation{
		ID: id, WordID: in.WordID, Phonetic: v.Phonetic, IPA: v.IPA, AudioFileIDs: []store.ObjectID{},
		Syllables: []string{}, ModelInfo: w.modelInfo(), CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1,
	})
	e := w.entry(in.WordID)
	e.PronunciationID = store.SetTo(id)
	if in.Force {
		e.ForcedPronunciation = &id
	}
}

func (w *Writes) setEtymology(in ApplyInput, et store.Etymology) {
	et.ModelInfo = w.modelInfo()
	w.entry(in.WordID).Etymology = store.SetTo(et)
}

func (w *Writes) addFacts(in ApplyInput, facts []factValue) {
	e := w.entry(in.WordID)
	ids := make([]store.ObjectID, len(facts))
	for i, f := range facts {
		id := FactID(in.RequestID, in.WordID, i)
		ids[i] = id
		w.out.Facts = append(w.out.Facts, store.Fact{ID: id, WordID: in.WordID, Content: f.Content, Category: f.Category,
			ModelInfo: w.modelInfo(), CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1})
	}
	if in.Force {
		e.ForcedFacts = store.SetTo(ids)
		return
	}
	e.AddFacts = append(e.AddFacts, ids...)
}

// Empty reports whether nothing is to be written.
func (w *Writes) Empty() bool { return w.out.Empty() }
