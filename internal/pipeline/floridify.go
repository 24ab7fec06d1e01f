package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// LoadWordStates reads what word-level components need to know of the words (their synthesis dictionary
// entries and whether the documents those link exist), with one query per collection for all of them.
// It reads nothing when comps has no word-level component; a word with nothing stored gets the zero state.
func LoadWordStates(ctx context.Context, s *store.Store, wordIDs []bson.ObjectID, comps []string) (map[bson.ObjectID]synthesis.WordState, error) {
	out := map[bson.ObjectID]synthesis.WordState{}
	want := map[string]bool{}
	for _, n := range comps {
		if c, ok := synthesis.Lookup(n); ok && c.Level == synthesis.WordLevel {
			want[n] = true
		}
	}
	if len(want) == 0 || len(wordIDs) == 0 {
		return out, nil
	}
	cur, err := s.Entries.Find(ctx, bson.M{"word_id": bson.M{"$in": wordIDs}}, options.Find().SetProjection(bson.M{
		"word_id": 1, "provider": 1, "pronunciation_id": 1, "fact_ids": 1, "etymology": 1}))
	if err != nil {
		return nil, fmt.Errorf("error loading dictionary entries: %w", err)
	}
	var entries []store.DictionaryEntry
	if err := cur.All(ctx, &entries); err != nil {
		return nil, fmt.Errorf("error loading dictionary entries: %w", err)
	}
	var pronIDs, factIDs []bson.ObjectID
	for i := range entries {
		e := &entries[i]
		st := out[e.WordID]
		if e.Provider == store.ProviderSynthesis {
			if st.Entry == nil {
				st.Entry = e
				if e.PronunciationID != nil {
					pronIDs = append(pronIDs, *e.PronunciationID)
				}
				factIDs = append(factIDs, e.FactIDs...)
			}
		} else if want["etymology"] && e.Etymology != nil && strings.TrimSpace(e.Etymology.Text) != "" {
			st.SourceEtymologies = append(st.SourceEtymologies, e.Etymology.Text)
		}
		out[e.WordID] = st
	}
	exists := func(c *mongo.Collection, ids []bson.ObjectID) (map[bson.ObjectID]bool, error) {
		found := map[bson.ObjectID]bool{}
		if len(ids) == 0 {
			return found, nil
		}
		cur, err := c.Find(ctx, bson.M{"_id": bson.M{"$in": ids}}, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return nil, fmt.Errorf("error loading %s: %w", c.Name(), err)
		}
		var rows []struct {
			ID bson.ObjectID `bson:"_id"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			return nil, fmt.Errorf("error loading %s: %w", c.Name(), err)
		}
		for _, r := range rows {
			found[r.ID] = true
		}
		return found, nil
	}
	if want["pronunciation"] {
		found, err := exists(s.Pronunciations, pronIDs)
		if err != nil {
			return nil, err
		}
		for id, st := range out {
			st.HasPronunciation = st.Entry != nil && st.Entry.PronunciationID != nil && found[*st.Entry.PronunciationID]
			out[id] = st
		}
	}
	if want["facts"] {
		found, err := exists(s.Facts, factIDs)
		if err != nil {
			return nil, err
		}
		for id, st := range out {
			st.Facts = 0
			if st.Entry != nil {
				for _, f := range st.Entry.FactIDs {
					if found[f] {
						st.Facts++
					}
				}
			}
			out[id] = st
		}
	}
	return out, nil
}

// writeFloridify sends the accumulated writes as bulk writes. Documents go before the links to them (examples
// before definitions, pronunciations and facts before dictionary entries), so nothing links a document that
// does not exist; under --force the documents a link replaces are removed first, as Floridify does.
func (d *Deps) writeFloridify(ctx context.Context, w *synthesis.Writes) error {
	if w.Empty() {
		return nil
	}
	if ex := w.ExampleModels(); len(ex) > 0 {
		if err := d.Store.BulkWrite(ctx, d.Store.Examples, ex, false); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("error writing examples: %w", err)
		}
	}
	if err := d.writeWordLevel(ctx, w); err != nil {
		return err
	}
	var defModels []mongo.WriteModel
	for defID, keep := range w.ForcedExamples() {
		// --force regenerates: older generated examples of this definition go, literature examples stay.
		filter := bson.M{"definition_id": defID, "type": "generated", "_id": bson.M{"$nin": keep}}
		cur, err := d.Store.Examples.Find(ctx, filter, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return fmt.Errorf("error finding old examples: %w", err)
		}
		var old []struct {
			ID bson.ObjectID `bson:"_id"`
		}
		if err := cur.All(ctx, &old); err != nil {
			return fmt.Errorf("error finding old examples: %w", err)
		}
		if len(old) == 0 {
			continue
		}
		oldIDs := make([]bson.ObjectID, len(old))
		for i, o := range old {
			oldIDs[i] = o.ID
		}
		// $pullAll, not $pull with $in: FerretDB ignores the condition form and leaves the links in place.
		defModels = append(defModels, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": defID}).
			SetUpdate(bson.M{"$pullAll": bson.M{"example_ids": oldIDs}}))
		if _, err := d.Store.Examples.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": oldIDs}}); err != nil {
			return fmt.Errorf("error removing old examples: %w", err)
		}
	}
	defModels = append(defModels, w.DefinitionModels()...)
	if len(defModels) > 0 {
		// Ordered: the $pullAll of old examples must land before the $addToSet of new ones.
		if err := d.Store.BulkWrite(ctx, d.Store.Definitions, defModels, true); err != nil {
			return fmt.Errorf("error writing definitions: %w", err)
		}
	}
	return nil
}

// writeWordLevel writes pronunciations and facts, then the synthesis dictionary entries that link them and
// carry the etymology. A new entry takes its word's languages (one query for all words).
func (d *Deps) writeWordLevel(ctx context.Context, w *synthesis.Writes) error {
	words := w.EntryWords()
	if len(words) == 0 {
		return nil
	}
	for _, step := range []struct {
		c      *mongo.Collection
		models []mongo.WriteModel
	}{{d.Store.Pronunciations, w.PronunciationModels()}, {d.Store.Facts, w.FactModels()}} {
		if len(step.models) == 0 {
			continue
		}
		if err := d.Store.BulkWrite(ctx, step.c, step.models, false); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("error writing %s: %w", step.c.Name(), err)
		}
	}
	if err := d.removeReplaced(ctx, w.ForcedWords()); err != nil {
		return err
	}
	cur, err := d.Store.Words.Find(ctx, bson.M{"_id": bson.M{"$in": words}}, options.Find().SetProjection(bson.M{"languages": 1}))
	if err != nil {
		return fmt.Errorf("error loading word languages: %w", err)
	}
	var ws []store.Word
	if err := cur.All(ctx, &ws); err != nil {
		return fmt.Errorf("error loading word languages: %w", err)
	}
	langs := make(map[bson.ObjectID][]string, len(ws))
	for _, x := range ws {
		langs[x.ID] = x.Languages
	}
	models := w.EntryModels(langs)
	err = d.Store.BulkWrite(ctx, d.Store.Entries, models, false)
	if err != nil && onlyDuplicates(err) {
		// Two appliers created the same word's entry at once (it is matched by word and provider, created
		// with a fixed _id): the loser's update did not happen. The entry exists now, so it is an update.
		err = d.Store.BulkWrite(ctx, d.Store.Entries, models, false)
	}
	if err != nil {
		return fmt.Errorf("error writing dictionary entries: %w", err)
	}
	return nil
}

// removeReplaced removes, for words whose pronunciation or facts a forced request regenerated, the documents
// their synthesis entry linked before. Only AI-made documents (with model_info) go: a provider's
// pronunciation the entry happened to link stays. Removing before relinking means a crash in between leaves
// a dangling link the retry repairs, never an orphan nothing finds again.
func (d *Deps) removeReplaced(ctx context.Context, forced map[bson.ObjectID]synthesis.ForcedWord) error {
	if len(forced) == 0 {
		return nil
	}
	ids := make([]bson.ObjectID, 0, len(forced))
	for id := range forced {
		ids = append(ids, id)
	}
	cur, err := d.Store.Entries.Find(ctx, bson.M{"word_id": bson.M{"$in": ids}, "provider": store.ProviderSynthesis},
		options.Find().SetProjection(bson.M{"word_id": 1, "pronunciation_id": 1, "fact_ids": 1}))
	if err != nil {
		return fmt.Errorf("error loading entries to regenerate: %w", err)
	}
	var entries []store.DictionaryEntry
	if err := cur.All(ctx, &entries); err != nil {
		return fmt.Errorf("error loading entries to regenerate: %w", err)
	}
	var oldPron, oldFacts []bson.ObjectID
	for _, e := range entries {
		f := forced[e.WordID]
		if f.Pronunciation != nil && e.PronunciationID != nil && *e.PronunciationID != *f.Pronunciation {
			oldPron = append(oldPron, *e.PronunciationID)
		}
		if f.FactsForced {
			for _, id := range e.FactIDs {
				if !slices.Contains(f.Facts, id) {
					oldFacts = append(oldFacts, id)
				}
			}
		}
	}
	for _, step := range []struct {
		c   *mongo.Collection
		ids []bson.ObjectID
	}{{d.Store.Pronunciations, oldPron}, {d.Store.Facts, oldFacts}} {
		if len(step.ids) == 0 {
			continue
		}
		if _, err := step.c.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": step.ids}, "model_info": bson.M{"$ne": nil}}); err != nil {
			return fmt.Errorf("error removing replaced %s: %w", step.c.Name(), err)
		}
	}
	return nil
}
