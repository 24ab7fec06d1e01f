package bench

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/floridify/batchsynth/internal/input"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/wordnet"
)

// WordNetDirDefault is where Debian's wordnet-base package puts WordNet 3.0.
const WordNetDirDefault = "/usr/share/wordnet"

// sampleWords is how many words examples/words-1000.jsonl holds.
const sampleWords = 1000

// RepoRoot returns the module's root directory (found from this file's path, so it works from any package's tests).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Words returns n real English words with their definitions (at most five senses each): the first n of
// examples/words-1000.jsonl when n <= 1000, else WordNet 3.0's n most common words picked the way
// `batchsynth wordnet-sample --count n --max-senses 5` picks them (the shipped sample is that command's
// first 1,000), which needs wordnet-base installed.
func Words(tb testing.TB, n int) []store.InputWord {
	tb.Helper()
	if n <= sampleWords {
		return sample(tb, n)
	}
	db, err := wordnet.Load(WordNetDirDefault)
	if err != nil {
		tb.Fatalf("bench: %d words need WordNet 3.0 (apt-get install -y wordnet-base): %v", n, err)
	}
	entries := db.Sample(n, 5, nil)
	if len(entries) < n {
		tb.Fatalf("bench: WordNet has %d candidate words, want %d", len(entries), n)
	}
	out := make([]store.InputWord, n)
	for i, e := range entries {
		w := store.InputWord{Word: e.Word, Line: i + 1}
		for _, d := range e.Definitions {
			w.Definitions = append(w.Definitions, store.InputDefinition{PartOfSpeech: string(d.PartOfSpeech), Text: d.Text})
		}
		out[i] = w
	}
	return out
}

func sample(tb testing.TB, n int) []store.InputWord {
	tb.Helper()
	f, err := os.Open(filepath.Join(RepoRoot(), "examples", "words-1000.jsonl"))
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
	}
	p, err := input.Parse(&buf)
	if err != nil {
		tb.Fatalf("bench: parsing the sample: %v", err)
	}
	if len(p.Words) != n || len(p.Errors) > 0 {
		tb.Fatalf("bench: want %d clean words from the sample, got %d and errors %v", n, len(p.Words), p.Errors)
	}
	return p.Words
}

// Headwords returns the words' headwords alone (no definitions), as the main app hands over words Floridify has.
func Headwords(words []store.InputWord) []store.InputWord {
	out := make([]store.InputWord, len(words))
	for i, w := range words {
		out[i] = store.InputWord{Word: w.Word, Line: w.Line}
	}
	return out
}

// Cycled returns n words: the shipped sample's 1,000 with their senses, repeated under fresh headwords
// ("word1", "word2", ... on each pass after the first), numbered as lines of one input file.
func Cycled(tb testing.TB, n int) []store.InputWord {
	sample := Words(tb, 1000)
	out := make([]store.InputWord, n)
	for i := range out {
		w := sample[i%len(sample)]
		if pass := i / len(sample); pass > 0 {
			w.Word += strconv.Itoa(pass)
		}
		w.Line = i + 1
		out[i] = w
	}
	return out
}
