package wordnet

import (
	"cmp"
	"math"
	"slices"
)

// Entry is one word with its definitions, in the project's JSONL input format:
//
//	{"word": "bank", "definitions": [{"part_of_speech": "noun", "text": "sloping land ..."}]}
type Entry struct {
	Word        string       `json:"word"`
	Definitions []Definition `json:"definitions"`
}

// Definition is one sense of an Entry's word.
type Definition struct {
	PartOfSpeech PartOfSpeech `json:"part_of_speech"`
	Text         string       `json:"text"`
}

// Defaults for SampleOpts. Words shorter than three letters are mostly
// letters of the alphabet and abbreviations in WordNet ("aa", "ab", "ca").
const (
	MinLenDefault = 3
	MaxLenDefault = 12
)

// SampleOpts narrows the words Sample picks from. The zero value, like nil,
// uses the defaults.
type SampleOpts struct {
	// MinLen is the shortest word, in letters. Defaults to MinLenDefault.
	MinLen int
	// MaxLen is the longest word, in letters. Defaults to MaxLenDefault.
	MaxLen int
}

func (o *SampleOpts) withDefaults() SampleOpts {
	var c SampleOpts
	if o != nil {
		c = *o
	}
	c.MinLen = cmp.Or(c.MinLen, MinLenDefault)
	c.MaxLen = cmp.Or(c.MaxLen, MaxLenDefault)
	return c
}

// Sample returns up to n common English words with up to maxSenses
// definitions each (all of them when maxSenses <= 0), most common first.
//
// Candidates are single lowercase words of ASCII letters; senses in which the
// word is only capitalised (proper nouns) are left out. Words rank by their
// senses' total tag count in the semantic concordance times the square root
// of their number of senses. The count alone puts "not", "also" and "many"
// near the top, single-sense words with little to enrich; the polysemy
// factor lifts everyday headwords with many meanings, such as "run", "light"
// and "set". Without cntlist.rev words rank by number of senses. Ties go by
// number of senses, then alphabetically, so the result depends only on the
// database and the arguments.
//
// When a word has more senses than maxSenses, the most frequently tagged are
// kept across parts of speech (so "run" keeps its verb senses). The kept
// senses are grouped by part of speech, the part of speech of the most
// frequent sense first, and keep WordNet's order within each group.
func (db *DB) Sample(n, maxSenses int, opts *SampleOpts) []Entry {
	o := opts.withDefaults()

	type candidate struct {
		word   string
		senses []Sense
		score  float64
	}
	var cands []candidate
	for word, senses := range db.senses {
		if len(word) < o.MinLen || len(word) > o.MaxLen || !isLowerASCII(word) {
			continue
		}
		var kept []Sense
		tags := 0
		for _, s := range senses {
			if s.Lowercase {
				kept = append(kept, s)
				tags += s.TagCount
			}
		}
		if len(kept) == 0 {
			continue
		}
		score := float64(len(kept))
		if db.hasTags {
			score = float64(tags) * math.Sqrt(float64(len(kept)))
		}
		cands = append(cands, candidate{word: word, senses: kept, score: score})
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(
			cmp.Compare(b.score, a.score),
			cmp.Compare(len(b.senses), len(a.senses)),
			cmp.Compare(a.word, b.word),
		)
	})

	entries := make([]Entry, 0, min(n, len(cands)))
	for _, c := range cands[:min(n, len(cands))] {
		entries = append(entries, Entry{Word: c.word, Definitions: definitions(pickSenses(c.senses, maxSenses))})
	}
	return entries
}

// pickSenses keeps the maxSenses most frequently tagged senses. senses is in
// WordNet order; each part of speech contributes a prefix of its own senses,
// since WordNet numbers them by frequency already. The result is grouped by
// part of speech in the order each was first picked.
func pickSenses(senses []Sense, maxSenses int) []Sense {
	if maxSenses <= 0 || len(senses) <= maxSenses {
		maxSenses = len(senses)
	}
	byPOS := make(map[PartOfSpeech][]Sense)
	var posOrder []PartOfSpeech // WordNet's, as senses arrives
	for _, s := range senses {
		if _, ok := byPOS[s.PartOfSpeech]; !ok {
			posOrder = append(posOrder, s.PartOfSpeech)
		}
		byPOS[s.PartOfSpeech] = append(byPOS[s.PartOfSpeech], s)
	}

	taken := make(map[PartOfSpeech]int)
	var pickOrder []PartOfSpeech
	for range maxSenses {
		var best PartOfSpeech
		bestCount := -1
		for _, pos := range posOrder {
			if i := taken[pos]; i < len(byPOS[pos]) && byPOS[pos][i].TagCount > bestCount {
				best, bestCount = pos, byPOS[pos][i].TagCount
			}
		}
		if taken[best] == 0 {
			pickOrder = append(pickOrder, best)
		}
		taken[best]++
	}

	picked := make([]Sense, 0, maxSenses)
	for _, pos := range pickOrder {
		picked = append(picked, byPOS[pos][:taken[pos]]...)
	}
	return picked
}

func definitions(senses []Sense) []Definition {
	defs := make([]Definition, len(senses))
	for i, s := range senses {
		defs[i] = Definition{PartOfSpeech: s.PartOfSpeech, Text: s.Definition}
	}
	return defs
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return s != ""
}
