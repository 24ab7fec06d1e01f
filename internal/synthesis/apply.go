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
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(content), &top); err != nil {
		return nil, fmt.Errorf("content is not a JSON object: %v", err)
	}
	s := Sense{Word: word}
	p := &Parsed{Word: map[string]any{}}
	parseDef := func(obj map[string]json.RawMessage, where string) (map[string]any, error) {
		vals := map[string]any{}
		for _, c := range comps {
			if c.Level != DefinitionLevel {
				continue
			}
			raw, ok := obj[c.Name]
			if !ok {
				return nil, fmt.Errorf("%s: missing %q", where, c.Name)
			}
			v, err := c.Parse(raw, s)
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
			var senses []map[string]json.RawMessage
			if err := json.Unmarshal(top["senses"], &senses); err != nil {
				return nil, fmt.Errorf("senses: want a list of objects: %v", err)
			}
			if len(senses) != nDefs {
				return nil, fmt.Errorf("senses: want %d entries, got %d", nDefs, len(senses))
			}
			for i, obj := range senses {
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
		v, err := c.Parse(raw, s)
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
	Requests   int
}

// NewWrites starts an empty set of writes stamped with now.
func NewWrites(now time.Time) *Writes {
	return &Writes{Now: now, defSets: map[bson.ObjectID]bson.M{}, defAddEx: map[bson.ObjectID][]bson.ObjectID{},
		forceExDef: map[bson.ObjectID][]bson.ObjectID{}}
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
// example ids), so applying the same answer twice writes the same documents.
func (w *Writes) Add(in ApplyInput, p *Parsed) error {
	if len(p.Defs) > 0 && len(p.Defs) != len(in.DefinitionIDs) {
		return fmt.Errorf("request %s: %d answers for %d definitions", in.RequestID, len(p.Defs), len(in.DefinitionIDs))
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

// ExampleID derives an example's _id from the request and position, so a re-run upserts the same document.
func ExampleID(requestID string, defID bson.ObjectID, i int) bson.ObjectID {
	h := sha256.Sum256([]byte(fmt.Sprintf("example|%s|%s|%d", requestID, defID.Hex(), i)))
	var id bson.ObjectID
	copy(id[:], h[:12])
	return id
}

func (w *Writes) addExamples(def bson.ObjectID, texts []string) {
	w.touchDef(def)
	for i, text := range texts {
		id := ExampleID(w.reqID, def, i)
		w.defAddEx[def] = append(w.defAddEx[def], id)
		doc := store.Example{
			ID: id, DefinitionID: def, Text: text, Type: "generated",
			ModelInfo: &store.ModelInfo{Name: w.model, Confidence: 1.0, GenerationCount: 1, TopP: 1, LastGenerated: w.Now},
			CreatedAt: w.Now, UpdatedAt: w.Now, Version: 1,
		}
		w.examples = append(w.examples, mongo.NewUpdateOneModel().
			SetFilter(bson.M{"_id": id}).SetUpdate(bson.M{"$setOnInsert": doc}).SetUpsert(true))
	}
}

// ForcedExamples lists, per definition, the examples a forced request keeps; older generated examples of
// those definitions are to be removed (literature examples stay).
func (w *Writes) ForcedExamples() map[bson.ObjectID][]bson.ObjectID { return w.forceExDef }

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

// Empty reports whether nothing is to be written.
func (w *Writes) Empty() bool { return len(w.defOrder) == 0 && len(w.examples) == 0 }
