package wordnet

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PartOfSpeech is a part of speech as the JSONL input format spells it.
type PartOfSpeech string

// The parts of speech WordNet has. Adjective satellites ("s" synsets) are
// adjectives.
const (
	Noun      PartOfSpeech = "noun"
	Verb      PartOfSpeech = "verb"
	Adjective PartOfSpeech = "adjective"
	Adverb    PartOfSpeech = "adverb"
)

// partsOfSpeech is WordNet's own order, used to break ties.
var partsOfSpeech = []struct {
	pos    PartOfSpeech
	suffix string // of the index. and data. files
}{
	{Noun, "noun"},
	{Verb, "verb"},
	{Adjective, "adj"},
	{Adverb, "adv"},
}

// Sense is one meaning of a word: one synset the word belongs to.
type Sense struct {
	PartOfSpeech PartOfSpeech
	// Number is the sense's rank within its part of speech, from 1; WordNet
	// numbers senses from the most to the least frequently tagged.
	Number int
	// Offset is the synset's byte offset in its data file, WordNet's id for it.
	Offset int64
	// Definition is the synset's gloss without its example sentences.
	Definition string
	// Gloss is the synset's gloss as WordNet has it, examples included.
	Gloss string
	// TagCount is how often the sense was tagged in the semantic concordance;
	// zero when cntlist.rev is absent.
	TagCount int
	// Lowercase reports whether the word appears in the synset in lowercase.
	// It does not for proper nouns: "china" the porcelain is lowercase, while
	// the country is spelled "China" and shares the index entry.
	Lowercase bool
}

// DB is a loaded WordNet database. It is read-only and safe for concurrent use.
type DB struct {
	// senses maps a lemma, as the index files spell it (lowercase, "_" for
	// spaces), to its senses: each part of speech in WordNet order, then
	// sense number order.
	senses  map[string][]Sense
	license string
	hasTags bool
}

type synset struct {
	words []string
	gloss string
}

// Load reads the WordNet database in dir (e.g. /usr/share/wordnet). The index
// and data files of all four parts of speech are required; cntlist.rev is used
// when present.
func Load(dir string) (*DB, error) {
	db := &DB{senses: make(map[string][]Sense)}

	tags, err := loadTagCounts(filepath.Join(dir, "cntlist.rev"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		db.hasTags = true
	}

	for _, p := range partsOfSpeech {
		synsets, license, err := loadData(filepath.Join(dir, "data."+p.suffix))
		if err != nil {
			return nil, err
		}
		if db.license == "" {
			db.license = license
		}
		if err := db.loadIndex(filepath.Join(dir, "index."+p.suffix), p.pos, synsets, tags); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// License returns WordNet's licence, as the data files' header states it.
func (db *DB) License() string {
	return db.license
}

// Senses returns a word's senses, each part of speech in WordNet order (noun,
// verb, adjective, adverb), then in sense number order. Multi-word lemmas use
// "_" for spaces, as WordNet does.
func (db *DB) Senses(word string) []Sense {
	return db.senses[strings.ToLower(word)]
}

// HasTagCounts reports whether cntlist.rev was loaded, so that Sample ranks
// words by how often they occur rather than by how many senses they have.
func (db *DB) HasTagCounts() bool {
	return db.hasTags
}

// tagKey identifies a sense in cntlist.rev: the lemma, its part of speech and
// its sense number, which is its position in the index file's offset list.
type tagKey struct {
	lemma  string
	pos    PartOfSpeech
	number int
}

// loadTagCounts reads cntlist.rev, whose lines are
// "lemma%ss_type:lex_filenum:lex_id:head_word:head_id sense_number tag_cnt".
func loadTagCounts(path string) (map[tagKey]int, error) {
	counts := make(map[tagKey]int)
	err := eachLine(path, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 {
			return fmt.Errorf("want 3 fields, got %d", len(f))
		}
		lemma, rest, ok := strings.Cut(f[0], "%")
		if !ok || rest == "" {
			return fmt.Errorf("sense key %q has no %%", f[0])
		}
		pos, err := posOfSSType(rest[:1])
		if err != nil {
			return err
		}
		number, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		counts[tagKey{lemma: lemma, pos: pos, number: number}] += count
		return nil
	})
	return counts, err
}

func posOfSSType(t string) (PartOfSpeech, error) {
	switch t {
	case "1", "n":
		return Noun, nil
	case "2", "v":
		return Verb, nil
	case "3", "5", "a", "s":
		return Adjective, nil
	case "4", "r":
		return Adverb, nil
	}
	return "", fmt.Errorf("unknown synset type %q", t)
}

// loadData reads a data file: the licence header (lines starting with two
// spaces, each "  N text") and synset lines
// "offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt ... | gloss".
func loadData(path string) (map[int64]synset, string, error) {
	synsets := make(map[int64]synset)
	var license strings.Builder
	err := eachLine(path, func(n int, line string) error {
		if strings.HasPrefix(line, "  ") {
			_, text, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
			license.WriteString(strings.TrimRight(text, " "))
			license.WriteByte('\n')
			return nil
		}
		fields, gloss, _ := strings.Cut(line, " | ")
		f := strings.Fields(fields)
		if len(f) < 6 {
			return fmt.Errorf("want at least 6 fields, got %d", len(f))
		}
		offset, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return err
		}
		wcnt, err := strconv.ParseInt(f[3], 16, 0)
		if err != nil {
			return fmt.Errorf("word count: %w", err)
		}
		if len(f) < 4+2*int(wcnt) {
			return fmt.Errorf("w_cnt %d but only %d fields", wcnt, len(f))
		}
		words := make([]string, wcnt)
		for i := range words {
			words[i] = stripAdjMarker(f[4+2*i])
		}
		synsets[offset] = synset{words: words, gloss: strings.TrimSpace(gloss)}
		return nil
	})
	return synsets, strings.TrimSpace(license.String()), err
}

// stripAdjMarker removes the syntactic marker WordNet appends to some
// adjectives: "(p)" predicate, "(a)" attributive, "(ip)" immediately postnominal.
func stripAdjMarker(word string) string {
	for _, m := range []string{"(p)", "(a)", "(ip)"} {
		if w, ok := strings.CutSuffix(word, m); ok {
			return w
		}
	}
	return word
}

// loadIndex reads an index file, whose lines are
// "lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...",
// the offsets listed in sense number order.
func (db *DB) loadIndex(path string, pos PartOfSpeech, synsets map[int64]synset, tags map[tagKey]int) error {
	return eachLine(path, func(n int, line string) error {
		if strings.HasPrefix(line, "  ") {
			return nil
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			return fmt.Errorf("want at least 6 fields, got %d", len(f))
		}
		lemma := f[0]
		synsetCnt, err1 := strconv.Atoi(f[2])
		pCnt, err2 := strconv.Atoi(f[3])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		offsets := f[4+pCnt+2:]
		if len(offsets) != synsetCnt {
			return fmt.Errorf("%q: synset_cnt %d but %d offsets", lemma, synsetCnt, len(offsets))
		}
		for i, o := range offsets {
			offset, err := strconv.ParseInt(o, 10, 64)
			if err != nil {
				return err
			}
			ss, ok := synsets[offset]
			if !ok {
				return fmt.Errorf("%q: synset %08d is not in the %s data file", lemma, offset, pos)
			}
			db.senses[lemma] = append(db.senses[lemma], Sense{
				PartOfSpeech: pos,
				Number:       i + 1,
				Offset:       offset,
				Definition:   StripExamples(ss.gloss),
				Gloss:        ss.gloss,
				TagCount:     tags[tagKey{lemma: lemma, pos: pos, number: i + 1}],
				Lowercase:    containsExact(ss.words, lemma),
			})
		}
		return nil
	})
}

func containsExact(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// StripExamples returns a gloss without its example sentences: WordNet appends
// them after the definition as '; "..."'. A gloss that is only examples is
// returned whole.
func StripExamples(gloss string) string {
	for i := 0; i < len(gloss); i++ {
		if gloss[i] != ';' {
			continue
		}
		if rest := strings.TrimLeft(gloss[i+1:], " "); strings.HasPrefix(rest, `"`) {
			if def := strings.TrimSpace(gloss[:i]); def != "" {
				return def
			}
			break
		}
	}
	return strings.TrimSpace(gloss)
}

func eachLine(path string, fn func(n int, line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("error opening WordNet file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	// data.noun's longest synset line is about 25 KB.
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("error parsing %s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("error reading %s: %w", path, err)
	}
	return nil
}
