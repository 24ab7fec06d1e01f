package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/floridify/batchsynth/internal/wordnet"
)

// The example set that `wordnet-sample --out DIR` writes. The small files
// are prefixes of the large one, so every example word is also in the
// benchmark set and the same sample serves docs, tests and benchmarks.
const (
	wordnetExampleWords  = 50 // words.jsonl
	wordnetWordListWords = 20 // words.txt
)

func newWordnetCmd() *cobra.Command {
	var (
		dir       string
		count     int
		maxSenses int
		out       string
	)
	cmd := &cobra.Command{
		Use:   "wordnet-sample",
		Short: "Write sample input of common English words and their WordNet definitions",
		Long: `wordnet-sample picks the most common single words in WordNet 3.0 (ranked by
how often their senses were tagged in WordNet's semantic concordance) and
writes them with up to --max-senses definitions each.

--out names a file ("-" for stdout): JSONL input, or a plain word list when
the name ends in .txt. When --out is a directory (an existing one, or a path
ending in "/"), it writes the repo's example set there:

  words.jsonl         the first 50 words, JSONL
  words-COUNT.jsonl   --count words, JSONL
  words.txt           the first 20 words, as a plain word list
  WORDNET-LICENSE     WordNet's licence, which these files must carry

WordNet comes from Debian's wordnet-base package (apt-get install -y wordnet-base).`,
		Example: `  batchsynth wordnet-sample --out examples/
  batchsynth wordnet-sample --count 200 --max-senses 3 --out words-200.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 {
				return fmt.Errorf("--count must be at least 1, got %d", count)
			}
			// Past flag checking, errors are about WordNet or the output, which
			// the usage text would only bury.
			cmd.SilenceUsage = true
			db, err := wordnet.Load(dir)
			if err != nil {
				return fmt.Errorf("error loading WordNet from %s (apt-get install -y wordnet-base): %w", dir, err)
			}
			entries := db.Sample(count, maxSenses, nil)
			if len(entries) < count {
				return fmt.Errorf("WordNet in %s has only %d candidate words, fewer than --count %d", dir, len(entries), count)
			}
			if isDirTarget(out) {
				return writeWordnetExamples(cmd.ErrOrStderr(), out, db, entries, count, maxSenses)
			}
			return writeWordnetFile(cmd.OutOrStdout(), out, entries)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "/usr/share/wordnet", "WordNet 3.0 database directory")
	f.IntVar(&count, "count", 1000, "number of words")
	f.IntVar(&maxSenses, "max-senses", 5, "most definitions per word (0 for all)")
	f.StringVar(&out, "out", "-", `output file ("-" for stdout; .txt for a word list) or directory for the example set`)
	return cmd
}

func isDirTarget(out string) bool {
	if out == "-" {
		return false
	}
	if strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)) {
		return true
	}
	fi, err := os.Stat(out)
	return err == nil && fi.IsDir()
}

func writeWordnetFile(stdout io.Writer, out string, entries []wordnet.Entry) error {
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(out, ".txt") {
		err = wordnet.WriteWordList(&buf, "Common English words, from WordNet 3.0 (see WORDNET-LICENSE).", entries)
	} else {
		err = wordnet.WriteJSONL(&buf, entries)
	}
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func writeWordnetExamples(log io.Writer, dir string, db *wordnet.DB, entries []wordnet.Entry, count, maxSenses int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("error creating %s: %w", dir, err)
	}
	large := fmt.Sprintf("words-%d.jsonl", count)
	regenerate := fmt.Sprintf("batchsynth wordnet-sample --count %d --max-senses %d --out %s/",
		count, maxSenses, filepath.ToSlash(filepath.Clean(dir)))

	var small, list, jsonl bytes.Buffer
	err := wordnet.WriteJSONL(&small, entries[:min(wordnetExampleWords, len(entries))])
	if err == nil {
		err = wordnet.WriteJSONL(&jsonl, entries)
	}
	if err == nil {
		err = wordnet.WriteWordList(&list, fmt.Sprintf(
			"Words already in Floridify: one word per line, to enrich their existing entries.\n"+
				"The first %d words of words.jsonl, from WordNet 3.0 (see WORDNET-LICENSE).\n"+
				"Regenerate with: %s", wordnetWordListWords, regenerate),
			entries[:min(wordnetWordListWords, len(entries))])
	}
	if err != nil {
		return err
	}
	license := fmt.Sprintf("%s\n\n"+
		"words.jsonl, %s and words.txt in this directory derive from WordNet 3.0\n"+
		"(Debian package wordnet-base, /usr/share/wordnet) and are covered by the\n"+
		"licence above. They were generated with:\n\n    %s\n", db.License(), large, regenerate)

	files := []struct {
		name string
		data []byte
	}{
		{"words.jsonl", small.Bytes()},
		{large, jsonl.Bytes()},
		{"words.txt", list.Bytes()},
		{"WORDNET-LICENSE", []byte(license)},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return fmt.Errorf("error writing %s: %w", path, err)
		}
		fmt.Fprintf(log, "wrote %s\n", path)
	}
	return nil
}
