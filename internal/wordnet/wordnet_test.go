package wordnet

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testdata/wordnet holds real WordNet 3.0 lines: the index entries of bank,
// bank_account, china, fair, well and alive, every synset they point to, their
// cntlist.rev lines and the files' licence headers.
const testDir = "testdata/wordnet"

func loadTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Load(testDir)
	if err != nil {
		t.Fatalf("Load(%s): %v", testDir, err)
	}
	return db
}

func TestLoad(t *testing.T) {
	t.Parallel()
	db := loadTestDB(t)

	if !db.HasTagCounts() {
		t.Error("HasTagCounts = false; want true (testdata has cntlist.rev)")
	}

	bank := db.Senses("bank")
	if len(bank) != 18 {
		t.Fatalf("len(Senses(bank)) = %d; want 18 (10 noun + 8 verb)", len(bank))
	}
	want := Sense{
		PartOfSpeech: Noun,
		Number:       1,
		Offset:       9213565,
		Definition:   "sloping land (especially the slope beside a body of water)",
		Gloss:        `sloping land (especially the slope beside a body of water); "they pulled the canoe up on the bank"; "he sat on the bank of the river and watched the currents"`,
		TagCount:     25,
		Lowercase:    true,
	}
	if bank[0] != want {
		t.Errorf("Senses(bank)[0] = %+v\nwant %+v", bank[0], want)
	}
	if last := bank[17]; last.PartOfSpeech != Verb || last.Number != 8 {
		t.Errorf("Senses(bank)[17] = %s sense %d; want verb sense 8", last.PartOfSpeech, last.Number)
	}

	// Satellites ("s") count as adjectives, and cntlist.rev numbers them
	// together with head adjectives: fair%5:00:00:beautiful:00 is sense 6.
	fair := db.Senses("fair")
	var adj []Sense
	for _, s := range fair {
		if s.PartOfSpeech == Adjective {
			adj = append(adj, s)
		}
	}
	if len(adj) != 10 || adj[5].TagCount != 1 || adj[0].TagCount != 10 {
		t.Errorf("fair adjectives: %d senses, sense 1 count %d, sense 6 count %d; want 10, 10, 1",
			len(adj), adj[0].TagCount, adj[5].TagCount)
	}

	// "alive(p)": the predicate-only marker is not part of the word.
	if alive := db.Senses("alive"); len(alive) == 0 || !alive[0].Lowercase {
		t.Errorf("Senses(alive)[0].Lowercase = false; want true once the (p) marker is stripped")
	}

	// china: the country is "China"; the porcelain senses are lowercase.
	var lower []int
	for _, s := range db.Senses("china") {
		if s.Lowercase {
			lower = append(lower, s.Number)
		}
	}
	if !slices.Equal(lower, []int{2, 4}) {
		t.Errorf("lowercase senses of china = %v; want [2 4]", lower)
	}

	if db.Senses("Bank")[0].Offset != want.Offset {
		t.Error("Senses is case-sensitive; want lookups to ignore case as the index does")
	}

	lic := db.License()
	if !strings.HasPrefix(lic, "This software and database is being provided to you, the LICENSEE, by\nPrinceton University") ||
		!strings.Contains(lic, "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.") ||
		!strings.HasSuffix(lic, "any associated documentation shall at all times remain with\nPrinceton University and LICENSEE agrees to preserve same.") {
		t.Errorf("License() =\n%s\nwant the data files' header without line numbers", lic)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()

	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		dir := copyTestDir(t)
		if err := os.Remove(filepath.Join(dir, "data.verb")); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "data.verb") {
			t.Fatalf("Load without data.verb: err = %v; want an error naming data.verb", err)
		}
	})

	t.Run("DanglingOffset", func(t *testing.T) {
		t.Parallel()
		dir := copyTestDir(t)
		path := filepath.Join(dir, "index.verb")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("01991222"), []byte("99999999"), 1)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "99999999") {
			t.Fatalf("Load with an index offset missing from data: err = %v; want it named", err)
		}
	})
}

func TestSample(t *testing.T) {
	t.Parallel()
	db := loadTestDB(t)

	t.Run("RanksByTagCount", func(t *testing.T) {
		t.Parallel()
		// Tag count × √senses: well 161×√22, bank 51×√18, fair 24×√17,
		// alive 17×√7, china 4×√2 (lowercase senses only); bank_account is
		// not a single word.
		got := words(db.Sample(10, 5, nil))
		if want := []string{"well", "bank", "fair", "alive", "china"}; !slices.Equal(got, want) {
			t.Fatalf("Sample words = %v; want %v", got, want)
		}
		if got := words(db.Sample(2, 5, nil)); !slices.Equal(got, []string{"well", "bank"}) {
			t.Fatalf("Sample(2) words = %v; want [well bank]", got)
		}
	})

	t.Run("LengthLimits", func(t *testing.T) {
		t.Parallel()
		got := words(db.Sample(10, 1, &SampleOpts{MinLen: 5, MaxLen: 5}))
		if want := []string{"alive", "china"}; !slices.Equal(got, want) {
			t.Fatalf("Sample words of 5 letters = %v; want %v", got, want)
		}
	})

	t.Run("PicksMostTaggedSensesAcrossPartsOfSpeech", func(t *testing.T) {
		t.Parallel()
		// well: adverb senses tagged 76, 30, 16, 6, ...; noun sense 1 tagged 8
		// beats adverb sense 4 (6) for fourth place, then adverb 4 beats the
		// rest. Groups come in the order first picked, each in WordNet order.
		well := entry(t, db.Sample(10, 5, nil), "well")
		want := []Definition{
			{Adverb, "(often used as a combining form) in a good or proper or satisfactory manner or to a high standard (`good' is a nonstandard dialectal variant for `well')"},
			{Adverb, "thoroughly or completely; fully; often used as a combining form"},
			{Adverb, "indicating high probability; in all likelihood"},
			{Adverb, "(used for emphasis or as an intensifier) entirely or fully"},
			{Noun, "a deep hole or shaft dug or drilled to obtain water or oil or gas or brine"},
		}
		if !slices.Equal(well.Definitions, want) {
			t.Fatalf("well definitions =\n%v\nwant\n%v", well.Definitions, want)
		}
	})

	t.Run("AllSenses", func(t *testing.T) {
		t.Parallel()
		bank := entry(t, db.Sample(10, 0, nil), "bank")
		if len(bank.Definitions) != 18 || bank.Definitions[0].PartOfSpeech != Noun || bank.Definitions[17].PartOfSpeech != Verb {
			t.Fatalf("bank with maxSenses 0: %d definitions; want all 18, nouns first", len(bank.Definitions))
		}
	})

	t.Run("SkipsProperNounSenses", func(t *testing.T) {
		t.Parallel()
		china := entry(t, db.Sample(10, 5, nil), "china")
		want := []Definition{
			{Noun, "high quality porcelain originally made only in China"},
			{Noun, "dishware made of high quality porcelain"},
		}
		if !slices.Equal(china.Definitions, want) {
			t.Fatalf("china definitions = %v; want %v", china.Definitions, want)
		}
	})

	t.Run("WithoutTagCounts", func(t *testing.T) {
		t.Parallel()
		dir := copyTestDir(t)
		if err := os.Remove(filepath.Join(dir, "cntlist.rev")); err != nil {
			t.Fatal(err)
		}
		db, err := Load(dir)
		if err != nil {
			t.Fatalf("Load without cntlist.rev: %v", err)
		}
		if db.HasTagCounts() {
			t.Error("HasTagCounts = true without cntlist.rev")
		}
		// By number of lowercase senses: well 22, bank 18, fair 17, alive 7, china 2.
		got := words(db.Sample(10, 3, nil))
		if want := []string{"well", "bank", "fair", "alive", "china"}; !slices.Equal(got, want) {
			t.Fatalf("Sample words = %v; want %v", got, want)
		}
	})
}

func TestStripExamples(t *testing.T) {
	t.Parallel()
	tests := []struct{ gloss, want string }{
		{`sloping land (especially the slope beside a body of water); "they pulled the canoe up on the bank"`, "sloping land (especially the slope beside a body of water)"},
		{`free from favoritism or self-interest or bias or deception; conforming with established standards or rules; "a fair referee"; "fair deal"`, "free from favoritism or self-interest or bias or deception; conforming with established standards or rules"},
		{"high quality porcelain originally made only in China", "high quality porcelain originally made only in China"},
		{`"only an example"`, `"only an example"`},
		{`a definition;"no space before the example"`, "a definition"},
		{`  padded  `, "padded"},
	}
	for _, tt := range tests {
		if got := StripExamples(tt.gloss); got != tt.want {
			t.Errorf("StripExamples(%q) = %q; want %q", tt.gloss, got, tt.want)
		}
	}
}

func TestWriteJSONL(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := WriteJSONL(&buf, []Entry{
		{Word: "bank", Definitions: []Definition{{Noun, "sloping land (especially the slope beside a body of water)"}}},
		{Word: "and", Definitions: []Definition{{Verb, "R&D <b>"}, {Adverb, "x"}}},
	})
	if err != nil {
		t.Fatalf("WriteJSONL: %v", err)
	}
	want := `{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land (especially the slope beside a body of water)"}]}
{"word":"and","definitions":[{"part_of_speech":"verb","text":"R&D <b>"},{"part_of_speech":"adverb","text":"x"}]}
`
	if buf.String() != want {
		t.Fatalf("WriteJSONL wrote\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestWriteWordList(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteWordList(&buf, "Words.\n\nMore.", []Entry{{Word: "bank"}, {Word: "fair"}}); err != nil {
		t.Fatalf("WriteWordList: %v", err)
	}
	if want := "# Words.\n#\n# More.\n\nbank\nfair\n"; buf.String() != want {
		t.Fatalf("WriteWordList wrote %q; want %q", buf.String(), want)
	}
}

func words(entries []Entry) []string {
	ws := make([]string, len(entries))
	for i, e := range entries {
		ws[i] = e.Word
	}
	return ws
}

func entry(t *testing.T, entries []Entry, word string) Entry {
	t.Helper()
	for _, e := range entries {
		if e.Word == word {
			return e
		}
	}
	t.Fatalf("%q not in sample %v", word, words(entries))
	return Entry{}
}

func copyTestDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(testDir)); err != nil {
		t.Fatalf("copying %s: %v", testDir, err)
	}
	return dir
}
