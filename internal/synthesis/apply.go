package synthesis

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

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

// Writes accumulates the MongoDB writes of applied requests, to be sent as a few bulk writes.
type Writes struct {
	Now time.Time

	// per request being applied
	reqID string
	model string

	defOrder   []bson.ObjectID
	defSets    map[bson.ObjectID]bson.M
	defAddEx   map[bson.ObjectID][]bson.ObjectID
	examples   []mongo.WriteModel
	forceExDef map[bson.ObjectID][]bson.ObjectID

	// word level: the synthesis dictionary entry of each word, and the documents it links
	entryOrder     []bson.ObjectID
	entrySets      map[bson.ObjectID]bson.M
	entryFacts     map[bson.ObjectID][]bson.ObjectID
	pronunciations []mongo.WriteModel
	facts          []mongo.WriteModel
	forced         map[bson.ObjectID]*ForcedWord

	Requests int
}

// ForcedWord is what forced requests regenerated of a word's linked documents. The documents the entry
// linked before are to be removed by the caller, which reads the entry first (see ForcedWords).
type ForcedWord struct {
	// Pronunciation is the new pronunciation's id, when pronunciation was regenerated.
	Pronunciation *bson.ObjectID
	// Facts are the new facts' ids, when facts were regenerated (FactsForced).
	Facts       []bson.ObjectID
	FactsForced bool
}

// NewWrites starts an empty set of writes stamped with now.
func NewWrites(now time.Time) *Writes {
	return &Writes{Now: now, defSets: map[bson.ObjectID]bson.M{}, defAddEx: map[bson.ObjectID][]bson.ObjectID{},
		forceExDef: map[bson.ObjectID][]bson.ObjectID{}, entrySets: map[bson.ObjectID]bson.M{},
		entryFacts: map[bson.ObjectID][]bson.ObjectID{}, forced: map[bson.ObjectID]*ForcedWord{}}
}

// ApplyInput is the part of a request that applying needs.
type ApplyInput struct {
	RequestID     string
	Model         string
	Force         bool
	WordID        bson.ObjectID
	DefinitionIDs []bson.ObjectID
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
			before := len(w.defAddEx[def.ID])
			c.ApplyDef(vals[name], def, w)
			if in.Force && name == "examples" {
				w.forceExDef[def.ID] = append(w.forceExDef[def.ID], w.defAddEx[def.ID][before:]...)
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

func (w *Writes) touchDef(id bson.ObjectID) {
	if _, ok := w.defSets[id]; !ok {
		w.defSets[id] = bson.M{}
		w.defOrder = append(w.defOrder, id)
	}
}

func (w *Writes) setDef(id bson.ObjectID, field string, v any) {
	w.touchDef(id)
	w.defSets[id][field] = v
}

func (w *Writes) modelInfo() *store.ModelInfo {
	return &store.ModelInfo{Name: w.model, Confidence: 1.0, GenerationCount: 1, TopP: 1, LastGenerated: w.Now}
}

// docID derives a document _id from its kind, the request and its place in the answer, so a re-run upserts
// the same document.
func docID(kind, requestID string, owner bson.ObjectID, i int) bson.ObjectID {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d", kind, requestID, owner.Hex(), i)))
	var id bson.ObjectID
	copy(id[:], h[:12])
	return id
}

// ExampleID derives an example's _id from the request and position, so a re-run upserts the same document.
func ExampleID(requestID string, defID bson.ObjectID, i int) bson.ObjectID {
	return docID("example", requestID, defID, i)
}

// PronunciationID derives the _id of the pronunciation a request creates for a word.
func PronunciationID(requestID string, wordID bson.ObjectID) bson.ObjectID {
	return docID("pronunciation", requestID, wordID, 0)
}

// FactID derives the _id of the i-th fact a request creates for a word.
func FactID(requestID string, wordID bson.ObjectID, i int) bson.ObjectID {
	return docID("fact", requestID, wordID, i)
}

func (w *Writes) addExamples(def bson.ObjectID, texts []string) {
	w.touchDef(def)
	for i, text := range texts {
		id := ExampleID(w.reqID, def, i)
		w.defAddEx[def] = append(w.defAddEx[def], id)
		doc := store.Example{
			ID: id, DefinitionID: def, Text: text, Type: "generated", ModelInfo: w.modelInfo(),
			CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1,
		}
		w.examples = append(w.examples, mongo.NewInsertOneModel().SetDocument(doc))
	}
}

func (w *Writes) touchEntry(word bson.ObjectID) {
	if _, ok := w.entrySets[word]; !ok {
		w.entrySets[word] = bson.M{}
		w.entryOrder = append(w.entryOrder, word)
	}
}

func (w *Writes) forcedWord(word bson.ObjectID) *ForcedWord {
	f := w.forced[word]
	if f == nil {
		f = &ForcedWord{}
		w.forced[word] = f
	}
	return f
}

func (w *Writes) setPronunciation(in ApplyInput, v pronunciationValue) {
	id := PronunciationID(in.RequestID, in.WordID)
	doc := store.Pronunciation{
		ID: id, WordID: in.WordID, Phonetic: v.Phonetic, IPA: v.IPA, AudioFileIDs: []bson.ObjectID{},
		Syllables: []string{}, ModelInfo: w.modelInfo(), CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1,
	}
	w.pronunciations = append(w.pronunciations, mongo.NewInsertOneModel().SetDocument(doc))
	w.touchEntry(in.WordID)
	w.entrySets[in.WordID]["pronunciation_id"] = id
	if in.Force {
		w.forcedWord(in.WordID).Pronunciation = &id
	}
}

func (w *Writes) setEtymology(in ApplyInput, e store.Etymology) {
	e.ModelInfo = w.modelInfo()
	w.touchEntry(in.WordID)
	w.entrySets[in.WordID]["etymology"] = e
}

func (w *Writes) addFacts(in ApplyInput, facts []factValue) {
	w.touchEntry(in.WordID)
	ids := make([]bson.ObjectID, len(facts))
	for i, f := range facts {
		id := FactID(in.RequestID, in.WordID, i)
		ids[i] = id
		doc := store.Fact{ID: id, WordID: in.WordID, Content: f.Content, Category: f.Category, ModelInfo: w.modelInfo(),
			CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1}
		w.facts = append(w.facts, mongo.NewInsertOneModel().SetDocument(doc))
	}
	if in.Force {
		f := w.forcedWord(in.WordID)
		f.Facts, f.FactsForced = ids, true
		return
	}
	w.entryFacts[in.WordID] = append(w.entryFacts[in.WordID], ids...)
}

// ForcedExamples lists, per definition, the examples a forced request keeps; older generated examples of
// those definitions are to be removed (literature examples stay).
func (w *Writes) ForcedExamples() map[bson.ObjectID][]bson.ObjectID { return w.forceExDef }

// ForcedWords lists, per word, the pronunciation and facts forced requests regenerated: the caller removes
// the ones the synthesis entry linked before.
func (w *Writes) ForcedWords() map[bson.ObjectID]ForcedWord {
	out := make(map[bson.ObjectID]ForcedWord, len(w.forced))
	for k, v := range w.forced {
		out[k] = *v
	}
	return out
}

// DefinitionModels returns one update per touched definition.
func (w *Writes) DefinitionModels() []mongo.WriteModel {
	out := make([]mongo.WriteModel, 0, len(w.defOrder))
	for _, id := range w.defOrder {
		set := bson.M{"updated_at": w.Now}
		for k, v := range w.defSets[id] {
			set[k] = v
		}
		upd := bson.M{"$set": set}
		if ex := w.defAddEx[id]; len(ex) > 0 {
			upd["$addToSet"] = bson.M{"example_ids": bson.M{"$each": ex}}
		}
		out = append(out, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(upd))
	}
	return out
}

// ExampleModels returns the example upserts.
func (w *Writes) ExampleModels() []mongo.WriteModel { return w.examples }

// PronunciationModels and FactModels return the upserts of word-level documents; send them before the
// entries that link them.
func (w *Writes) PronunciationModels() []mongo.WriteModel { return w.pronunciations }
func (w *Writes) FactModels() []mongo.WriteModel          { return w.facts }

// EntryWords lists the words whose synthesis entry is written.
func (w *Writes) EntryWords() []bson.ObjectID { return w.entryOrder }

// EntryModels returns one upsert per word of its DictionaryEntry with provider "synthesis", matched by word
// and provider (one entry per word and provider, whoever created it). A new entry gets Floridify's defaults
// and languages from langs (the word's; "en" when unknown).
func (w *Writes) EntryModels(langs map[bson.ObjectID][]string) []mongo.WriteModel {
	out := make([]mongo.WriteModel, 0, len(w.entryOrder))
	for _, word := range w.entryOrder {
		set := bson.M{"updated_at": w.Now}
		for k, v := range w.entrySets[word] {
			set[k] = v
		}
		upd := bson.M{}
		if f := w.forced[word]; f != nil && f.FactsForced {
			set["fact_ids"] = f.Facts
		} else if ids := w.entryFacts[word]; len(ids) > 0 {
			upd["$addToSet"] = bson.M{"fact_ids": bson.M{"$each": ids}}
		}
		upd["$set"] = set
		lang := langs[word]
		if len(lang) == 0 {
			lang = []string{"en"}
		}
		onInsert := bson.M{
			"_id": store.EntryID(word), "definition_ids": bson.A{}, "pronunciation_id": nil, "fact_ids": bson.A{},
			"image_ids": bson.A{}, "languages": lang, "etymology": nil, "phrases": bson.A{}, "source_entries": bson.A{},
			"model_info": nil, "created_at": w.Now, "version": 1,
		}
		// A path may appear in one operator only.
		for k := range set {
			delete(onInsert, k)
		}
		if _, ok := upd["$addToSet"]; ok {
			delete(onInsert, "fact_ids")
		}
		upd["$setOnInsert"] = onInsert
		out = append(out, mongo.NewUpdateOneModel().
			SetFilter(bson.M{"word_id": word, "provider": store.ProviderSynthesis}).SetUpdate(upd).SetUpsert(true))
	}
	return out
}

// Empty reports whether nothing is to be written.
func (w *Writes) Empty() bool {
	return len(w.defOrder) == 0 && len(w.examples) == 0 && len(w.entryOrder) == 0
}
