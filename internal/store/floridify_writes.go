package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Field is a value a write sets; the zero Field leaves the document's field as it is.
type Field[T any] struct {
	Value T
	Set   bool
}

// SetTo returns the Field that sets v.
func SetTo[T any](v T) Field[T] { return Field[T]{Value: v, Set: true} }

// DefinitionWrite is the update of one Definition by applied answers: the fields they set, and the examples
// they link.
type DefinitionWrite struct {
	ID ObjectID

	Synonyms         Field[[]string]
	Antonyms         Field[[]string]
	CEFRLevel        Field[string]
	FrequencyBand    Field[int]
	LanguageRegister Field[string]
	Domain           Field[*string]
	Region           Field[*string]
	GrammarPatterns  Field[[]GrammarPat]
	Collocations     Field[[]Collocation]
	UsageNotes       Field[[]UsageNote]
	WordForms        Field[[]WordForm]

	// AddExamples are added to example_ids (the documents are in FloridifyWrites.Examples).
	AddExamples []ObjectID
	// KeepExamples is set when a forced request regenerated the examples: the definition's other generated
	// examples are removed, these (and literature examples) stay.
	KeepExamples Field[[]ObjectID]
}

// set returns the $set of d's fields stamped with now.
func (d *DefinitionWrite) set(now time.Time) bson.M {
	set := bson.M{"updated_at": now}
	setField(set, "synonyms", d.Synonyms)
	setField(set, "antonyms", d.Antonyms)
	setField(set, "cefr_level", d.CEFRLevel)
	setField(set, "frequency_band", d.FrequencyBand)
	setField(set, "language_register", d.LanguageRegister)
	setField(set, "domain", d.Domain)
	setField(set, "region", d.Region)
	setField(set, "grammar_patterns", d.GrammarPatterns)
	setField(set, "collocations", d.Collocations)
	setField(set, "usage_notes", d.UsageNotes)
	setField(set, "word_forms", d.WordForms)
	return set
}

func setField[T any](set bson.M, name string, f Field[T]) {
	if f.Set {
		set[name] = f.Value
	}
}

// EntryWrite is the upsert of one word's synthesis DictionaryEntry by applied answers, and what forced
// requests regenerated of the documents it links.
type EntryWrite struct {
	WordID ObjectID

	PronunciationID Field[ObjectID]
	Etymology       Field[Etymology]
	// AddFacts are added to fact_ids, unless ForcedFacts is set, which replaces fact_ids.
	AddFacts []ObjectID

	// ForcedPronunciation is the new pronunciation's id when a forced request regenerated it: the one the
	// entry linked before is removed.
	ForcedPronunciation *ObjectID
	// ForcedFacts are the new facts' ids when a forced request regenerated them: the entry's other facts
	// are removed.
	ForcedFacts Field[[]ObjectID]
}

// FloridifyWrites are the Floridify documents and links of applied answers, written by WriteFloridify as a
// few bulk writes. Every document has a deterministic _id, so writing the same answers twice writes the
// same documents.
type FloridifyWrites struct {
	Now time.Time

	// Definitions and Entries are in the order they were first touched.
	Definitions    []*DefinitionWrite
	Entries        []*EntryWrite
	Examples       []Example
	Pronunciations []Pronunciation
	Facts          []Fact
}

// Empty reports whether nothing is to be written.
func (w *FloridifyWrites) Empty() bool {
	return len(w.Definitions) == 0 && len(w.Examples) == 0 && len(w.Entries) == 0
}

// WriteFloridify sends w as bulk writes. Documents go before the links to them (examples before
// definitions, pronunciations and facts before dictionary entries), so nothing links a document that does
// not exist; under --force the documents a link replaces are removed first, as Floridify does.
func (s *Store) WriteFloridify(ctx context.Context, w *FloridifyWrites) error {
	if w.Empty() {
		return nil
	}
	if ex := insertModels(w.Examples); len(ex) > 0 {
		if err := s.bulkWrite(ctx, s.examples, ex, false); err != nil && !onlyDuplicateKeys(err) {
			return fmt.Errorf("error writing examples: %w", err)
		}
	}
	if err := s.writeWordLevel(ctx, w); err != nil {
		return err
	}
	var defModels []mongo.WriteModel
	for _, d := range w.Definitions {
		if !d.KeepExamples.Set {
			continue
		}
		// --force regenerates: older generated examples of this definition go, literature examples stay.
		filter := bson.M{"definition_id": d.ID, "type": "generated", "_id": bson.M{"$nin": d.KeepExamples.Value}}
		cur, err := s.examples.Find(ctx, filter, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return fmt.Errorf("error finding old examples: %w", err)
		}
		var old []struct {
			ID ObjectID `bson:"_id"`
		}
		if err := cur.All(ctx, &old); err != nil {
			return fmt.Errorf("error finding old examples: %w", err)
		}
		if len(old) == 0 {
			continue
		}
		oldIDs := make([]ObjectID, len(old))
		for i, o := range old {
			oldIDs[i] = o.ID
		}
		// $pullAll, not $pull with $in: FerretDB ignores the condition form and leaves the links in place.
		defModels = append(defModels, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": d.ID}).
			SetUpdate(bson.M{"$pullAll": bson.M{"example_ids": oldIDs}}))
		if _, err := s.examples.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": oldIDs}}); err != nil {
			return fmt.Errorf("error removing old examples: %w", err)
		}
	}
	for _, d := range w.Definitions {
		upd := bson.M{"$set": d.set(w.Now)}
		if len(d.AddExamples) > 0 {
			upd["$addToSet"] = bson.M{"example_ids": bson.M{"$each": d.AddExamples}}
		}
		defModels = append(defModels, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": d.ID}).SetUpdate(upd))
	}
	if len(defModels) > 0 {
		// Ordered: the $pullAll of old examples must land before the $addToSet of new ones.
		if err := s.bulkWrite(ctx, s.definitions, defModels, true); err != nil {
			return fmt.Errorf("error writing definitions: %w", err)
		}
	}
	return nil
}

// insertModels returns the inserts of docs.
func insertModels[T any](docs []T) []mongo.WriteModel {
	out := make([]mongo.WriteModel, len(docs))
	for i, d := range docs {
		out[i] = mongo.NewInsertOneModel().SetDocument(d)
	}
	return out
}

// writeWordLevel writes pronunciations and facts, then the synthesis dictionary entries that link them and
// carry the etymology. A new entry takes its word's languages (one query for all words).
func (s *Store) writeWordLevel(ctx context.Context, w *FloridifyWrites) error {
	if len(w.Entries) == 0 {
		return nil
	}
	words := make([]ObjectID, len(w.Entries))
	for i, e := range w.Entries {
		words[i] = e.WordID
	}
	for _, step := range []struct {
		c      *mongo.Collection
		models []mongo.WriteModel
	}{{s.pronunciations, insertModels(w.Pronunciations)}, {s.facts, insertModels(w.Facts)}} {
		if len(step.models) == 0 {
			continue
		}
		if err := s.bulkWrite(ctx, step.c, step.models, false); err != nil && !onlyDuplicateKeys(err) {
			return fmt.Errorf("error writing %s: %w", step.c.Name(), err)
		}
	}
	if err := s.removeReplaced(ctx, w.Entries); err != nil {
		return err
	}
	cur, err := s.words.Find(ctx, bson.M{"_id": bson.M{"$in": words}}, options.Find().SetProjection(bson.M{"languages": 1}))
	if err != nil {
		return fmt.Errorf("error loading word languages: %w", err)
	}
	var ws []Word
	if err := cur.All(ctx, &ws); err != nil {
		return fmt.Errorf("error loading word languages: %w", err)
	}
	langs := make(map[ObjectID][]string, len(ws))
	for _, x := range ws {
		langs[x.ID] = x.Languages
	}
	models := entryModels(w, langs)
	err = s.bulkWrite(ctx, s.entries, models, false)
	if err != nil && onlyDuplicateKeys(err) {
		// Two appliers created the same word's entry at once (it is matched by word and provider, created
		// with a fixed _id): the loser's update did not happen. The entry exists now, so it is an update.
		err = s.bulkWrite(ctx, s.entries, models, false)
	}
	if err != nil {
		return fmt.Errorf("error writing dictionary entries: %w", err)
	}
	return nil
}

// entryModels returns one upsert per word of its DictionaryEntry with provider "synthesis", matched by word
// and provider (one entry per word and provider, whoever created it). A new entry gets Floridify's defaults
// and languages from langs (the word's; "en" when unknown).
func entryModels(w *FloridifyWrites, langs map[ObjectID][]string) []mongo.WriteModel {
	out := make([]mongo.WriteModel, 0, len(w.Entries))
	for _, e := range w.Entries {
		set := bson.M{"updated_at": w.Now}
		setField(set, "pronunciation_id", e.PronunciationID)
		setField(set, "etymology", e.Etymology)
		upd := bson.M{}
		if e.ForcedFacts.Set {
			set["fact_ids"] = e.ForcedFacts.Value
		} else if len(e.AddFacts) > 0 {
			upd["$addToSet"] = bson.M{"fact_ids": bson.M{"$each": e.AddFacts}}
		}
		upd["$set"] = set
		lang := langs[e.WordID]
		if len(lang) == 0 {
			lang = []string{"en"}
		}
		onInsert := bson.M{
			"_id": EntryID(e.WordID), "definition_ids": bson.A{}, "pronunciation_id": nil, "fact_ids": bson.A{},
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
			SetFilter(bson.M{"word_id": e.WordID, "provider": ProviderSynthesis}).SetUpdate(upd).SetUpsert(true))
	}
	return out
}

// removeReplaced removes, for words whose pronunciation or facts a forced request regenerated, the documents
// their synthesis entry linked before. Only AI-made documents (with model_info) go: a provider's
// pronunciation the entry happened to link stays. Removing before relinking means a crash in between leaves
// a dangling link the retry repairs, never an orphan nothing finds again.
func (s *Store) removeReplaced(ctx context.Context, writes []*EntryWrite) error {
	forced := map[ObjectID]*EntryWrite{}
	var ids []ObjectID
	for _, e := range writes {
		if e.ForcedPronunciation != nil || e.ForcedFacts.Set {
			forced[e.WordID] = e
			ids = append(ids, e.WordID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	cur, err := s.entries.Find(ctx, bson.M{"word_id": bson.M{"$in": ids}, "provider": ProviderSynthesis},
		options.Find().SetProjection(bson.M{"word_id": 1, "pronunciation_id": 1, "fact_ids": 1}))
	if err != nil {
		return fmt.Errorf("error loading entries to regenerate: %w", err)
	}
	var entries []DictionaryEntry
	if err := cur.All(ctx, &entries); err != nil {
		return fmt.Errorf("error loading entries to regenerate: %w", err)
	}
	var oldPron, oldFacts []ObjectID
	for _, e := range entries {
		f := forced[e.WordID]
		if f.ForcedPronunciation != nil && e.PronunciationID != nil && *e.PronunciationID != *f.ForcedPronunciation {
			oldPron = append(oldPron, *e.PronunciationID)
		}
		if f.ForcedFacts.Set {
			for _, id := range e.FactIDs {
				if !slices.Contains(f.ForcedFacts.Value, id) {
					oldFacts = append(oldFacts, id)
				}
			}
		}
	}
	for _, step := range []struct {
		c   *mongo.Collection
		ids []ObjectID
	}{{s.pronunciations, oldPron}, {s.facts, oldFacts}} {
		if len(step.ids) == 0 {
			continue
		}
		if _, err := step.c.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": step.ids}, "model_info": bson.M{"$ne": nil}}); err != nil {
			return fmt.Errorf("error removing replaced %s: %w", step.c.Name(), err)
		}
	}
	return nil
}

// onlyDuplicateKeys reports a bulk error made only of duplicate-key errors: two runs raced to insert the
// same deterministic _id, and the document is there either way. BulkWrite joins the errors of its commands.
func onlyDuplicateKeys(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !onlyDuplicateKeys(e) {
				return false
			}
		}
		return true
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}
