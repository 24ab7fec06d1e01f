package synthesis

import (
	"fmt"
	"slices"
	"strings"
)

// Floridify's stored enums (as Floridify's models define them; docs/floridify.md), and how a model's answer maps onto them.
// Strict schemas already confine answers to these values; the mappings are for answers that reach Parse some
// other way (an answer stored under an older prompt, a model that ignores strict mode) and for the values
// Floridify's own prompts ask for but its models cannot store. A value with no mapping is an error: the
// attempt fails with the reason and nothing of it is written.

var (
	cefrLevels     = []string{"A1", "A2", "B1", "B2", "C1", "C2"}
	registers      = []string{"formal", "informal", "neutral", "slang", "technical"}
	usageNoteTypes = []string{"grammar", "confusion", "regional", "register", "error"}
	wordFormTypes  = []string{"plural", "past", "past_participle", "present_participle", "comparative", "superlative", "variant"}
	factCategories = []string{"etymology", "usage", "cultural", "linguistic", "historical"}
	regions        = []string{"US", "UK", "AU", "CA", "IN", "ZA", "IE", "NZ"}
	collocTypes    = []string{"adjective", "verb", "noun", "adverb", "preposition"}
	// domains is the list Floridify's domain prompt allows (assess/domain).
	domains = []string{"medical", "legal", "computing", "mathematics", "physics", "chemistry", "biology", "music",
		"art", "architecture", "engineering", "linguistics", "philosophy", "psychology", "economics", "business",
		"sports", "military", "nautical", "culinary"}
)

// registerAliases: Floridify's register prompt offers "literary", which Definition.language_register cannot
// hold (Beanie would persist it and then fail to load the document). Literary language is a formal register.
var registerAliases = map[string]string{"literary": "formal", "colloquial": "informal"}

// usageNoteAliases maps the looser labels models give (UsageNoteResponse.type is a free string in Floridify,
// where one stray label fails the whole component) onto the five stored types.
var usageNoteAliases = map[string]string{
	"grammatical": "grammar", "syntax": "grammar",
	"confusable": "confusion", "commonly confused": "confusion", "commonly_confused": "confusion",
	"regional variation": "regional", "dialect": "regional",
	"style": "register", "formality": "register", "tone": "register",
	"common error": "error", "common_error": "error", "mistake": "error", "common mistake": "error", "spelling": "error",
}

// wordFormAliases maps spellings of the seven stored form types. wordFormDropped are the forms Floridify's
// word-form prompt asks for that WordForm.form_type cannot hold: they are left out (Floridify's own run loses
// the whole list to a validation error instead). Anything else is an error.
var (
	wordFormAliases = map[string]string{
		"plurals": "plural", "plural_form": "plural",
		"past_tense": "past", "simple_past": "past", "preterite": "past",
		"pastparticiple": "past_participle", "present_participle_form": "present_participle",
		"gerund": "present_participle", "ing_form": "present_participle",
		"comparative_form": "comparative", "superlative_form": "superlative",
		"spelling_variant": "variant", "alternative_spelling": "variant", "alternate_spelling": "variant",
	}
	wordFormDropped = map[string]bool{
		"possessive": true, "third_person_singular": true, "agent_noun": true, "adverb": true,
		"noun": true, "verb": true, "adjective": true, "derived": true, "derivation": true,
	}
)

// factAliases is Floridify's own mapping (general -> usage, technical/scientific -> linguistic); Floridify maps
// any other unknown category to usage as well, and so do we.
var factAliases = map[string]string{
	"general": "usage", "technical": "linguistic", "scientific": "linguistic", "history": "historical",
	"culture": "cultural", "etymological": "etymology", "linguistics": "linguistic",
}

var regionAliases = map[string]string{"GB": "UK", "USA": "US", "UNITED STATES": "US", "BRITAIN": "UK"}

var domainAliases = map[string]string{
	"medicine": "medical", "law": "legal", "computer science": "computing", "computers": "computing",
	"math": "mathematics", "maths": "mathematics", "cooking": "culinary", "food": "culinary", "sport": "sports",
	"finance": "business", "commerce": "business", "sailing": "nautical", "navy": "nautical",
}

// noDomain are answers that mean "a general sense": stored as null, as Floridify's prompt asks.
var noDomain = map[string]bool{"": true, "general": true, "none": true, "null": true, "n/a": true}

// normLabel lower-cases and trims a label and turns inner spaces and dashes into underscores.
func normLabel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.NewReplacer("-", "_", " ", "_").Replace(s)
}

func mapRegister(v string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(v))
	if a, ok := registerAliases[k]; ok {
		k = a
	}
	if slices.Contains(registers, k) {
		return k, nil
	}
	return "", fmt.Errorf("register %q is not one of %s", v, strings.Join(registers, ", "))
}

func mapUsageNoteType(v string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(v))
	if a, ok := usageNoteAliases[k]; ok {
		k = a
	}
	if slices.Contains(usageNoteTypes, k) {
		return k, nil
	}
	return "", fmt.Errorf("usage note type %q is not one of %s", v, strings.Join(usageNoteTypes, ", "))
}

// mapWordFormType returns the stored form type; ok false means a known form Floridify cannot store (drop it).
func mapWordFormType(v string) (string, bool, error) {
	k := normLabel(v)
	if a, ok := wordFormAliases[k]; ok {
		k = a
	}
	if slices.Contains(wordFormTypes, k) {
		return k, true, nil
	}
	if wordFormDropped[k] {
		return "", false, nil
	}
	return "", false, fmt.Errorf("word form type %q is not one of %s", v, strings.Join(wordFormTypes, ", "))
}

func mapFactCategory(v string) string {
	k := strings.ToLower(strings.TrimSpace(v))
	if a, ok := factAliases[k]; ok {
		k = a
	}
	if slices.Contains(factCategories, k) {
		return k
	}
	return "usage"
}

func mapRegion(v string) (string, error) {
	k := strings.ToUpper(strings.TrimSpace(v))
	if a, ok := regionAliases[k]; ok {
		k = a
	}
	if slices.Contains(regions, k) {
		return k, nil
	}
	return "", fmt.Errorf("region %q is not one of %s", v, strings.Join(regions, ", "))
}

// mapDomain returns "" for a general sense.
func mapDomain(v string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(v))
	if noDomain[k] {
		return "", nil
	}
	if a, ok := domainAliases[k]; ok {
		k = a
	}
	if slices.Contains(domains, k) {
		return k, nil
	}
	return "", fmt.Errorf("domain %q is not one of Floridify's domains", v)
}

func mapCollocationType(v string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(v))
	switch k {
	case "adj":
		k = "adjective"
	case "adv":
		k = "adverb"
	case "prep":
		k = "preposition"
	}
	if slices.Contains(collocTypes, k) {
		return k, nil
	}
	return "", fmt.Errorf("collocation type %q is not one of %s", v, strings.Join(collocTypes, ", "))
}

// StoredFrequencyBand turns the model's band (corpus-rank bands: 1 = the 1,000 commonest words ... 5 = rarer
// than the top 10,000, the scale Floridify's AI prompt uses) into the stored band, where 5 = most common.
// Floridify computes frequency_band locally first (wordfreq Zipf: 5 = most common) and maps bands to CEFR on
// that scale (_BAND_TO_CEFR 5 -> A1); only its AI fallback wrote the inverse, leaving the field on mixed
// scales. Storing the local direction keeps every value batchsynth writes on the scale most values use.
func StoredFrequencyBand(aiBand int) (int, error) {
	if aiBand < 1 || aiBand > 5 {
		return 0, fmt.Errorf("frequency band %d is not 1..5", aiBand)
	}
	return 6 - aiBand, nil
}

// enumSchema is a strict schema for one of values; nullable adds null as an answer.
func enumSchema(values []string, nullable bool) map[string]any {
	vals := make([]any, 0, len(values)+1)
	for _, v := range values {
		vals = append(vals, v)
	}
	if nullable {
		return map[string]any{"type": []any{"string", "null"}, "enum": append(vals, nil)}
	}
	return map[string]any{"type": "string", "enum": vals}
}
