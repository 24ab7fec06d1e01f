package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/estimate"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// Components are the ten per-definition components of the original design's cost example (docs/benchmarks.md,
// "Cost"): the heaviest realistic bodies, about 3 KB each in packed mode.
var Components = []string{"synonyms", "examples", "antonyms", "cefr_level", "register", "domain",
	"grammar_patterns", "collocations", "usage_notes", "regional_variants"}

// Model is the corpus's model (the configuration default).
const Model = "gpt-4o-mini"

// Request is one rendered request of the corpus, with what synthesis.Decode needs to validate its answer.
type Request struct {
	ID          string
	Kind        string
	Word        string
	NDefs       int
	Components  []string
	Body        []byte
	InputTokens int64
}

// Corpus is the requests that synthesis.Plan renders for a set of words, every field missing (as
// `batchsynth estimate` plans them offline: the same ids, the same bodies the builder stores and uploads).
type Corpus struct {
	Requests   []Request
	Mode       string
	Components []string
	Bytes      int64 // total body bytes
}

// NewCorpus plans words in mode with comps on Model.
func NewCorpus(tb testing.TB, words []store.InputWord, mode string, comps []string) *Corpus {
	tb.Helper()
	ins, _, err := estimate.Offline{}.Inputs(context.Background(), words, comps)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	c := &Corpus{Mode: mode, Components: comps}
	for _, w := range ins {
		planned, err := synthesis.Plan(w, synthesis.PlanOptions{Mode: mode, Model: Model, Components: comps})
		if err != nil {
			tb.Fatalf("bench: planning %q: %v", w.Word, err)
		}
		for _, p := range planned {
			c.Requests = append(c.Requests, Request{
				ID: p.ID, Kind: p.Target.Kind, Word: p.Target.Word, NDefs: len(p.Target.Defs),
				Components: p.Target.Components, Body: p.Rendered.Body, InputTokens: p.Rendered.InputTokens,
			})
			c.Bytes += int64(len(p.Rendered.Body))
		}
	}
	if len(c.Requests) == 0 {
		tb.Fatal("bench: the corpus is empty")
	}
	return c
}

var defaultCorpus struct {
	once sync.Once
	c    *Corpus
}

// DefaultCorpus is the shipped 1,000 words (4,707 senses) in packed mode (the default) with Components,
// planned once per process (about 15 MB of bodies, part of every later heap baseline).
func DefaultCorpus(tb testing.TB) *Corpus {
	tb.Helper()
	defaultCorpus.once.Do(func() {
		defaultCorpus.c = NewCorpus(tb, Words(tb, sampleWords), synthesis.ModePacked, Components)
	})
	if defaultCorpus.c == nil {
		tb.Fatal("bench: the default corpus failed to build")
	}
	return defaultCorpus.c
}

// Line is one input line: a request attempt's custom_id and its body.
type Line struct {
	CustomID string
	Body     []byte
	Req      *Request
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Lines returns n input lines, cycling through the corpus. The first pass uses the requests' own ids; later
// passes derive fresh ids of the same shape, so that every custom_id of a file is unique, as in a real one.
func (c *Corpus) Lines(n int) []Line {
	out := make([]Line, n)
	for i := range out {
		r := &c.Requests[i%len(c.Requests)]
		id := r.ID
		if pass := i / len(c.Requests); pass > 0 {
			h := sha256.Sum256([]byte(r.ID + "\x00" + strconv.Itoa(pass)))
			id = "r" + idEncoding.EncodeToString(h[:15])
		}
		out[i] = Line{CustomID: synthesis.CustomID(id, 1), Body: r.Body, Req: r}
	}
	return out
}

// ByCustomID indexes lines by custom_id.
func ByCustomID(lines []Line) map[string]*Request {
	m := make(map[string]*Request, len(lines))
	for _, l := range lines {
		m[l.CustomID] = l.Req
	}
	return m
}

// WriteInput writes lines as a JSONL input file at path, the way the builder renders one, and returns its size.
func WriteInput(tb testing.TB, path string, lines []Line) int64 {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	var size int64
	for _, l := range lines {
		buf = openaibatch.AppendLine(buf[:0], l.CustomID, l.Body)
		n, _ := bw.Write(buf)
		size += int64(n)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatalf("bench: %v", err)
	}
	return size
}

// EmulatorOutput runs the input file at inputPath through a fault-free Batch API emulator over HTTP (upload,
// create, poll until completed, download) and writes the batch's output file to outputPath: real result
// lines, each with schema-valid synthetic content for its request's own schema. It returns the output size.
func EmulatorOutput(tb testing.TB, inputPath, outputPath string) int64 {
	tb.Helper()
	n, errN := EmulatorFiles(tb, emulator.Config{Seed: 1}, inputPath, outputPath, "")
	if errN != 0 {
		tb.Fatalf("bench: a fault-free emulator wrote an error file of %d bytes", errN)
	}
	return n
}

// EmulatorFiles runs the input file through an emulator configured by cfg and writes the batch's output and
// error files (either path may be empty to skip it). It returns their sizes.
func EmulatorFiles(tb testing.TB, cfg emulator.Config, inputPath, outputPath, errorPath string) (int64, int64) {
	tb.Helper()
	ctx := context.Background()
	// An emulator of its own, closed on return: it keeps every file in memory, which must not stay in the
	// heap the benchmarks measure next.
	ts := httptest.NewServer(emulator.New(cfg))
	defer ts.Close()
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-bench", BaseURL: ts.URL + "/v1/", MaxRetries: 2, Timeout: 10 * time.Minute})
	in, err := os.Open(inputPath)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	defer in.Close()
	fileID, err := c.Upload(ctx, "bench.jsonl", in)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	b, err := c.Create(ctx, fileID, "bench", Model)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for !store.IsTerminalStatus(string(b.Status)) {
		if time.Now().After(deadline) {
			tb.Fatalf("bench: emulator batch %s still %s", b.ID, b.Status)
		}
		time.Sleep(50 * time.Millisecond)
		if b, err = c.Get(ctx, b.ID); err != nil {
			tb.Fatalf("bench: %v", err)
		}
	}
	if b.Status != "completed" {
		tb.Fatalf("bench: emulator batch %s: status %s %v", b.ID, b.Status, b.Errors.Data)
	}
	save := func(fileID, path string) int64 {
		if fileID == "" || path == "" {
			return 0
		}
		rc, err := c.Content(ctx, fileID)
		if err != nil {
			tb.Fatalf("bench: %v", err)
		}
		defer rc.Close()
		out, err := os.Create(path)
		if err != nil {
			tb.Fatalf("bench: %v", err)
		}
		defer out.Close()
		n, err := io.Copy(out, rc)
		if err != nil {
			tb.Fatalf("bench: copying %s: %v", fileID, err)
		}
		return n
	}
	var errN int64
	if b.ErrorFileID != "" {
		errN = max(1, save(b.ErrorFileID, errorPath))
	}
	return save(b.OutputFileID, outputPath), errN
}

// MiB converts bytes to mebibytes.
func MiB(n uint64) float64 { return float64(n) / (1 << 20) }

// Describe summarises a corpus for logs.
func (c *Corpus) Describe() string {
	return fmt.Sprintf("%d %s requests, %d components, mean body %d bytes", len(c.Requests), c.Mode,
		len(c.Components), c.Bytes/int64(len(c.Requests)))
}

// ReadResults reads the result file at path one line after the other (openaibatch.Reader.Next), calls each
// with every result in order, and returns how many there were. A malformed line fails tb.
func ReadResults(tb testing.TB, path string, each func(openaibatch.Result)) int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rd := openaibatch.NewReader(f)
	got := 0
	for {
		r, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			tb.Fatalf("bench: %s line %d: %v", path, line, err)
		}
		each(r)
		got++
	}
}
