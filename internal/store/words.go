package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// WordRef names a word the way a submission does: its language and its text.
type WordRef struct {
	Language string
	Text     string
}

// Lang is the word's language, English when the submission names none.
func (w InputWord) Lang() string {
	if w.Language == "" {
		return "en"
	}
	return w.Language
}

// Ref is the word's WordRef.
func (w InputWord) Ref() WordRef { return WordRef{Language: w.Lang(), Text: w.Word} }

// WordIDsByText finds Floridify's words with any of texts and returns their ids by language and text. A word
// stored without languages counts as English; when two words share a language and text, the first found
// keeps the key.
func (s *Store) WordIDsByText(ctx context.Context, texts []string) (map[WordRef]ObjectID, error) {
	cur, err := s.words.Find(ctx, bson.M{"text": bson.M{"$in": texts}}, options.Find().SetProjection(bson.M{"text": 1, "languages": 1}))
	if err != nil {
		return nil, fmt.Errorf("error looking up words: %w", err)
	}
	var found []Word
	if err := cur.All(ctx, &found); err != nil {
		return nil, fmt.Errorf("error looking up words: %w", err)
	}
	ids := make(map[WordRef]ObjectID, len(found))
	for _, f := range found {
		langs := f.Languages
		if len(langs) == 0 {
			langs = []string{"en"}
		}
		for _, l := range langs {
			k := WordRef{Language: l, Text: f.Text}
			if _, ok := ids[k]; !ok {
				ids[k] = f.ID
			}
		}
	}
	return ids, nil
}

// SortedDefinitionsOfWords loads every definition of the words wordIDs, in _id order (the order expansion
// plans a word's definitions in).
func (s *Store) SortedDefinitionsOfWords(ctx context.Context, wordIDs []ObjectID) ([]Definition, error) {
	cur, err := s.definitions.Find(ctx, bson.M{"word_id": bson.M{"$in": wordIDs}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("error loading definitions: %w", err)
	}
	var defs []Definition
	if err := cur.All(ctx, &defs); err != nil {
		return nil, fmt.Errorf("error loading definitions: %w", err)
	}
	return defs, nil
}

// UpsertSubmittedWords writes submitted words, their definitions and their synthesis dictionary entries the
// way Floridify stores them, and returns the ids of the words by language and text (with every other language
// of the Floridify words found). Deterministic _ids make concurrent runs converge on the same documents.
func (s *Store) UpsertSubmittedWords(ctx context.Context, words []InputWord, t time.Time) (map[WordRef]ObjectID, error) {
	// Existing Floridify words keep their ids.
	texts := make([]string, 0, len(words))
	for _, w := range words {
		texts = append(texts, w.Word)
	}
	wordIDs, err := s.WordIDsByText(ctx, texts)
	if err != nil {
		return nil, err
	}
	type entryLink struct {
		id   ObjectID
		defs []ObjectID
	}
	var wm, dm, em []mongo.WriteModel
	var entryDefs []entryLink
	for _, w := range words {
		lang := w.Lang()
		k := w.Ref()
		id, ok := wordIDs[k]
		if !ok {
			id = WordID(lang, w.Word)
			wordIDs[k] = id
			wm = append(wm, mongo.NewInsertOneModel().SetDocument(Word{ID: id, Text: w.Word, Normalized: normalizeWord(w.Word),
				Lemma: normalizeWord(w.Word), Languages: []string{lang}, CorpusIDs: []ObjectID{}, CreatedAt: t, UpdatedAt: t, Version: 1}))
		}
		entryID := EntryID(id)
		var defIDs []ObjectID
		for _, df := range w.Definitions {
			did := DefinitionID(id, df.PartOfSpeech, df.Text)
			defIDs = append(defIDs, did)
			dm = append(dm, mongo.NewInsertOneModel().SetDocument(submittedDefinitionDoc(did, id, entryID, df, t)))
		}
		em = append(em, mongo.NewInsertOneModel().SetDocument(bson.M{"_id": entryID, "word_id": id, "provider": ProviderSynthesis,
			"languages": []string{lang}, "definition_ids": defIDs, "pronunciation_id": nil, "fact_ids": []ObjectID{},
			"image_ids": []ObjectID{}, "etymology": nil, "phrases": bson.A{}, "source_entries": bson.A{},
			"created_at": t, "updated_at": t, "version": 1}))
		entryDefs = append(entryDefs, entryLink{entryID, defIDs})
	}
	// Insert-if-absent with deterministic ids: one insert command per collection; a duplicate key means the
	// document is already there (an earlier run, or Floridify's own).
	for _, step := range []struct {
		c  *mongo.Collection
		ms []mongo.WriteModel
	}{{s.words, wm}, {s.definitions, dm}} {
		if len(step.ms) == 0 {
			continue
		}
		if err := s.bulkWrite(ctx, step.c, step.ms, false); err != nil {
			if _, dup := duplicateIndexes(err); !dup {
				return nil, fmt.Errorf("error inserting %s: %w", step.c.Name(), err)
			}
		}
	}
	if len(em) == 0 {
		return wordIDs, nil
	}
	err = s.bulkWrite(ctx, s.entries, em, false)
	if err == nil {
		return wordIDs, nil
	}
	dups, ok := duplicateIndexes(err)
	if !ok {
		return nil, fmt.Errorf("error inserting dictionary entries: %w", err)
	}
	// Existing synthesis entries gain the submitted definitions.
	var link []mongo.WriteModel
	for _, i := range dups {
		link = append(link, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": entryDefs[i].id}).SetUpdate(bson.M{
			"$addToSet": bson.M{"definition_ids": bson.M{"$each": entryDefs[i].defs}}, "$set": bson.M{"updated_at": t}}))
	}
	if err := s.bulkWrite(ctx, s.entries, link, false); err != nil {
		return nil, fmt.Errorf("error linking definitions to entries: %w", err)
	}
	return wordIDs, nil
}

func normalizeWord(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// submittedDefinitionDoc is a submitted definition as Floridify stores it: every field present, null or empty
// where the submission says nothing.
func submittedDefinitionDoc(id, wordID, entryID ObjectID, df InputDefinition, t time.Time) bson.M {
	return bson.M{
		"_id": id, "word_id": wordID, "part_of_speech": df.PartOfSpeech, "text": df.Text,
		"meaning_cluster": nil, "sense_number": nil, "word_forms": bson.A{}, "example_ids": bson.A{},
		"synonyms": bson.A{}, "antonyms": bson.A{}, "cognates": bson.A{}, "language_register": nil,
		"domain": nil, "region": nil, "usage_notes": bson.A{}, "grammar_patterns": bson.A{}, "collocations": bson.A{},
		"transitivity": nil, "cefr_level": nil, "frequency_band": nil, "frequency_score": nil, "image_ids": bson.A{},
		"dictionary_entry_id": entryID, "providers": bson.A{ProviderSynthesis}, "source_definitions": bson.A{},
		"model_info": nil, "created_at": t, "updated_at": t, "version": 1,
	}
}
