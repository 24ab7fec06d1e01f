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

// Floridify collection names.
const (
	CollWords             = "words"
	CollDefinitions       = "definitions"
	CollExamples          = "examples"
	CollPronunciations    = "pronunciations"
	CollFacts             = "facts"
	CollDictionaryEntries = "dictionary_entries"
)

// ProviderSynthesis is the DictionaryEntry provider of synthesized entries.
const ProviderSynthesis = "synthesis"

// Word mirrors Floridify's Word document (the fields batchsynth reads or writes).
type Word struct {
	ID         bson.ObjectID   `bson:"_id"`
	Text       string          `bson:"text"`
	Normalized string          `bson:"normalized"`
	Lemma      string          `bson:"lemma"`
	Languages  []string        `bson:"languages"`
	CorpusIDs  []bson.ObjectID `bson:"corpus_ids"`
	CreatedAt  time.Time       `bson:"created_at"`
	UpdatedAt  time.Time       `bson:"updated_at"`
	Version    int             `bson:"version"`
}

// Definition mirrors Floridify's Definition document. Pointers are fields Floridify stores as null when unset.
type Definition struct {
	ID               bson.ObjectID   `bson:"_id"`
	WordID           bson.ObjectID   `bson:"word_id"`
	PartOfSpeech     string          `bson:"part_of_speech"`
	Text             string          `bson:"text"`
	SenseNumber      *string         `bson:"sense_number"`
	WordForms        []WordForm      `bson:"word_forms"`
	ExampleIDs       []bson.ObjectID `bson:"example_ids"`
	Synonyms         []string        `bson:"synonyms"`
	Antonyms         []string        `bson:"antonyms"`
	Cognates         []string        `bson:"cognates"`
	LanguageRegister *string         `bson:"language_register"`
	Domain           *string         `bson:"domain"`
	Region           *string         `bson:"region"`
	UsageNotes       []UsageNote     `bson:"usage_notes"`
	GrammarPatterns  []GrammarPat    `bson:"grammar_patterns"`
	Collocations     []Collocation   `bson:"collocations"`
	Transitivity     *string         `bson:"transitivity"`
	CEFRLevel        *string         `bson:"cefr_level"`
	FrequencyBand    *int            `bson:"frequency_band"`
	FrequencyScore   *float64        `bson:"frequency_score"`
	ImageIDs         []bson.ObjectID `bson:"image_ids"`
	Providers        []string        `bson:"providers"`
	CreatedAt        time.Time       `bson:"created_at"`
	UpdatedAt        time.Time       `bson:"updated_at"`
	Version          int             `bson:"version"`
}

type WordForm struct {
	FormType string `bson:"form_type" json:"form_type"`
	Text     string `bson:"text" json:"text"`
}

type UsageNote struct {
	Type string `bson:"type" json:"type"`
	Text string `bson:"text" json:"text"`
}

type GrammarPat struct {
	Pattern     string  `bson:"pattern" json:"pattern"`
	Description *string `bson:"description" json:"description"`
}

type Collocation struct {
	Text      string  `bson:"text" json:"text"`
	Type      string  `bson:"type" json:"type"`
	Frequency float64 `bson:"frequency" json:"frequency"`
}

// ModelInfo is Floridify's embedded ModelInfo.
type ModelInfo struct {
	Name             string    `bson:"name"`
	Confidence       float64   `bson:"confidence"`
	Temperature      float64   `bson:"temperature"`
	MaxTokens        *int      `bson:"max_tokens"`
	TopP             float64   `bson:"top_p"`
	FrequencyPenalty float64   `bson:"frequency_penalty"`
	PresencePenalty  float64   `bson:"presence_penalty"`
	GenerationCount  int       `bson:"generation_count"`
	PromptTokens     *int      `bson:"prompt_tokens"`
	CompletionTokens *int      `bson:"completion_tokens"`
	TotalTokens      *int      `bson:"total_tokens"`
	ResponseTimeMS   *int      `bson:"response_time_ms"`
	LastGenerated    time.Time `bson:"last_generated"`
}

// Example mirrors Floridify's Example document.
type Example struct {
	ID           bson.ObjectID `bson:"_id"`
	DefinitionID bson.ObjectID `bson:"definition_id"`
	Text         string        `bson:"text"`
	Type         string        `bson:"type"` // generated | literature
	ModelInfo    *ModelInfo    `bson:"model_info,omitempty"`
	CreatedAt    time.Time     `bson:"created_at"`
	UpdatedAt    time.Time     `bson:"updated_at"`
	Version      int           `bson:"version"`
}

// Pronunciation mirrors Floridify's Pronunciation document.
type Pronunciation struct {
	ID           bson.ObjectID   `bson:"_id"`
	WordID       bson.ObjectID   `bson:"word_id"`
	Phonetic     string          `bson:"phonetic"`
	IPA          *string         `bson:"ipa"`
	AudioFileIDs []bson.ObjectID `bson:"audio_file_ids"`
	Syllables    []string        `bson:"syllables"`
	StressPatt   *string         `bson:"stress_pattern"`
	ModelInfo    *ModelInfo      `bson:"model_info,omitempty"`
	CreatedAt    time.Time       `bson:"created_at"`
	UpdatedAt    time.Time       `bson:"updated_at"`
	Version      int             `bson:"version"`
}

// Fact mirrors Floridify's Fact document.
type Fact struct {
	ID        bson.ObjectID `bson:"_id"`
	WordID    bson.ObjectID `bson:"word_id"`
	Content   string        `bson:"content"`
	Category  string        `bson:"category"`
	ModelInfo *ModelInfo    `bson:"model_info,omitempty"`
	CreatedAt time.Time     `bson:"created_at"`
	UpdatedAt time.Time     `bson:"updated_at"`
	Version   int           `bson:"version"`
}

// Etymology is embedded in the synthesis DictionaryEntry.
type Etymology struct {
	Text           string     `bson:"text"`
	OriginLanguage *string    `bson:"origin_language"`
	RootWords      []string   `bson:"root_words"`
	FirstKnownUse  *string    `bson:"first_known_use"`
	ModelInfo      *ModelInfo `bson:"model_info,omitempty"`
}

// DictionaryEntry mirrors Floridify's DictionaryEntry (one per word and provider).
type DictionaryEntry struct {
	ID              bson.ObjectID   `bson:"_id"`
	WordID          bson.ObjectID   `bson:"word_id"`
	DefinitionIDs   []bson.ObjectID `bson:"definition_ids"`
	PronunciationID *bson.ObjectID  `bson:"pronunciation_id"`
	FactIDs         []bson.ObjectID `bson:"fact_ids"`
	ImageIDs        []bson.ObjectID `bson:"image_ids"`
	Provider        string          `bson:"provider"`
	Languages       []string        `bson:"languages"`
	Etymology       *Etymology      `bson:"etymology"`
	CreatedAt       time.Time       `bson:"created_at"`
	UpdatedAt       time.Time       `bson:"updated_at"`
	Version         int             `bson:"version"`
}

// WordEntryState is what word-level synthesis needs to know of a word as Floridify stores it.
type WordEntryState struct {
	// Entry is the word's DictionaryEntry with provider "synthesis" (its word_id, provider, pronunciation_id,
	// fact_ids and etymology); nil when the word has none yet.
	Entry *DictionaryEntry
	// HasPronunciation: Entry.pronunciation_id names a pronunciations document that exists.
	HasPronunciation bool
	// Facts counts the facts documents Entry.fact_ids names that exist.
	Facts int
	// SourceEtymologies are other providers' etymology texts for the word.
	SourceEtymologies []string
}

// WordEntryReads says which parts of a WordEntryState to read beyond the entry itself.
type WordEntryReads struct {
	Pronunciation, Facts, SourceEtymologies bool
}

// WordEntryStates reads the synthesis dictionary entries of the words and, as asked by what, whether the
// documents those link exist and other providers' etymologies, with one query per collection for all of
// them. A word with nothing stored is absent from the map.
func (s *Store) WordEntryStates(ctx context.Context, wordIDs []ObjectID, what WordEntryReads) (map[ObjectID]WordEntryState, error) {
	out := map[ObjectID]WordEntryState{}
	if len(wordIDs) == 0 {
		return out, nil
	}
	cur, err := s.entries.Find(ctx, bson.M{"word_id": bson.M{"$in": wordIDs}}, options.Find().SetProjection(bson.M{
		"word_id": 1, "provider": 1, "pronunciation_id": 1, "fact_ids": 1, "etymology": 1}))
	if err != nil {
		return nil, fmt.Errorf("error loading dictionary entries: %w", err)
	}
	var entries []DictionaryEntry
	if err := cur.All(ctx, &entries); err != nil {
		return nil, fmt.Errorf("error loading dictionary entries: %w", err)
	}
	var pronIDs, factIDs []ObjectID
	for i := range entries {
		e := &entries[i]
		st := out[e.WordID]
		if e.Provider == ProviderSynthesis {
			if st.Entry == nil {
				st.Entry = e
				if e.PronunciationID != nil {
					pronIDs = append(pronIDs, *e.PronunciationID)
				}
				factIDs = append(factIDs, e.FactIDs...)
			}
		} else if what.SourceEtymologies && e.Etymology != nil && strings.TrimSpace(e.Etymology.Text) != "" {
			st.SourceEtymologies = append(st.SourceEtymologies, e.Etymology.Text)
		}
		out[e.WordID] = st
	}
	exists := func(c *mongo.Collection, ids []ObjectID) (map[ObjectID]bool, error) {
		found := map[ObjectID]bool{}
		if len(ids) == 0 {
			return found, nil
		}
		cur, err := c.Find(ctx, bson.M{"_id": bson.M{"$in": ids}}, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return nil, fmt.Errorf("error loading %s: %w", c.Name(), err)
		}
		var rows []struct {
			ID ObjectID `bson:"_id"`
		}
		if err := cur.All(ctx, &rows); err != nil {
			return nil, fmt.Errorf("error loading %s: %w", c.Name(), err)
		}
		for _, r := range rows {
			found[r.ID] = true
		}
		return found, nil
	}
	if what.Pronunciation {
		found, err := exists(s.pronunciations, pronIDs)
		if err != nil {
			return nil, err
		}
		for id, st := range out {
			st.HasPronunciation = st.Entry != nil && st.Entry.PronunciationID != nil && found[*st.Entry.PronunciationID]
			out[id] = st
		}
	}
	if what.Facts {
		found, err := exists(s.facts, factIDs)
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
