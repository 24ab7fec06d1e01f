package synthesis

import (
	"math"
	"strings"
)

// Counts are how many items a list component asks for, following Floridify's adaptive rule
// (ai/adaptive_counts.py: language, number of senses, part of speech).
type Counts struct {
	Synonyms, Antonyms, Examples, Facts, Collocations, UsageNotes, GrammarPatterns int
}

// ComputeCounts ports Floridify's compute_counts(language, definition_count, part_of_speech).
func ComputeCounts(language string, nDefs int, pos string) Counts {
	lang := 0.4
	if language == "" || language == "en" {
		lang = 1.0
	}
	if nDefs < 1 {
		nDefs = 1
	}
	poly := math.Min(1+float64(nDefs-1)*0.15, 1.5)
	posf := posFactor(pos)
	f := lang * poly * posf
	return Counts{
		Synonyms:        clamp(round(5*f), 2, 12),
		Antonyms:        clamp(round(3*f), 1, 8),
		Examples:        clamp(round(2*lang), 1, 4),
		Facts:           clamp(round(2*poly), 1, 4),
		Collocations:    clamp(round(4*f), 2, 8),
		UsageNotes:      clamp(round(2*lang), 1, 3),
		GrammarPatterns: clamp(round(2*posf), 1, 3),
	}
}

func posFactor(pos string) float64 {
	switch strings.ToLower(strings.TrimSpace(pos)) {
	case "":
		return 0.8
	case "adjective", "verb":
		return 1.0
	case "noun":
		return 0.8
	case "adverb":
		return 0.7
	case "interjection":
		return 0.4
	case "preposition", "conjunction", "determiner", "pronoun", "particle":
		return 0.3
	}
	return 0.5
}

// round matches Python's round(): halves go to the even neighbour.
func round(x float64) int { return int(math.RoundToEven(x)) }

func clamp(v, lo, hi int) int { return max(lo, min(hi, v)) }
