package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/floridify/batchsynth/internal/openaibatch"
)

func scratchLines(b *testing.B) [][]byte {
	c := DefaultCorpus(b)
	dir := b.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	WriteInput(b, in, c.Lines(5000))
	EmulatorOutput(b, in, out)
	f, _ := os.Open(out)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}

func BenchmarkScratchParse(b *testing.B) {
	lines := scratchLines(b)
	b.Run("v1-twopass", func(b *testing.B) {
		for b.Loop() {
			for _, l := range lines {
				if _, err := openaibatch.ParseLine(l); err != nil {
					b.Fatal(err)
				}
			}
		}
		ReportRate(b, len(lines), 0)
	})
	b.Run("v1-onepass", func(b *testing.B) {
		for b.Loop() {
			for _, l := range lines {
				if _, err := ParseLineOnePass(l); err != nil {
					b.Fatal(err)
				}
			}
		}
		ReportRate(b, len(lines), 0)
	})
	b.Run("v2-onepass", func(b *testing.B) {
		for b.Loop() {
			for _, l := range lines {
				var x onePassLine
				if err := jsonv2.Unmarshal(l, &x); err != nil {
					b.Fatal(err)
				}
			}
		}
		ReportRate(b, len(lines), 0)
	})
}
