package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/chaos"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
	"github.com/floridify/batchsynth/internal/testfleet"
)

// cli runs the built batchsynth binary against a test fleet's Redis, MongoDB database and emulator.
type cli struct {
	bin string
	env []string
	dir string
}

func newCLI(t *testing.T, f *testfleet.Fleet) *cli {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "batchsynth")
	if err := testenv.Build("./cmd/batchsynth", bin); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "REDIS_URL="+f.RedisURL, "MONGODB_URI="+f.Config.MongoURI, "MONGODB_DATABASE="+f.Database,
		"OPENAI_API_KEY=sk-test", "OPENAI_BASE_URL="+f.Config.OpenAIBaseURL, "BATCHSYNTH_LOG_LEVEL=warn")
	return &cli{bin: bin, env: env, dir: dir}
}

// run runs the binary with args and returns its exit code, stdout and stderr.
func (c *cli) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running batchsynth %v: %v\n%s", args, err, stderr.String())
	return 0, "", ""
}

// file writes a words file and returns its path.
func (c *cli) file(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// submitFile runs `batchsynth process --json --words path` and returns the stored job and stderr.
func (c *cli) submitFile(t *testing.T, f *testfleet.Fleet, path string, want int) (*store.Job, string) {
	t.Helper()
	code, out, errOut := c.run(t, "process", "--json", "--components", "synonyms", "--words", path)
	if code != 0 {
		t.Fatalf("process exited %d; want 0 (the valid rest goes on)\nstdout %s\nstderr %s", code, out, errOut)
	}
	var res struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.JobID == "" {
		t.Fatalf("process printed %q: %v", out, err)
	}
	job, err := f.Store.Job(context.Background(), res.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.WordsTotal != want {
		t.Fatalf("job %s holds %d words, want %d; stderr:\n%s", job.ID, job.WordsTotal, want, errOut)
	}
	return job, errOut
}

// wantErrors checks that stderr names each line with its message, and that the job recorded them.
func wantErrors(t *testing.T, job *store.Job, stderr string, want map[int]string) {
	t.Helper()
	for line, msg := range want {
		found := false
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, ": line "+itoa(line)+": ") && strings.Contains(l, msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("stderr does not name line %d with %q:\n%s", line, msg, stderr)
		}
		if job != nil {
			found = false
			for _, e := range job.InputErrors {
				if e.Line == line && strings.Contains(e.Message, msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("job %s does not record line %d with %q: %+v", job.ID, line, msg, job.InputErrors)
			}
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestCLIBadInput runs the built binary (go build into a temp dir) on bad input: each bad line or field gets
// a clear error naming it, the valid rest is submitted, a submission with nothing valid, an unknown
// component or an unknown job or batch id exits non-zero with a message. Words with underscores, spaces,
// quotes and non-Latin letters are real headwords: they go all the way through the fleet.
func TestCLIBadInput(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{}, nil)
	c := newCLI(t, f)

	t.Run("BinaryGarbage", func(t *testing.T) {
		// A PNG header and raw bytes between two words: each bad line is named, both words go on.
		data := []byte("apple\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\nbanana\n\xde\xad\xbe\xef\n")
		job, stderr := c.submitFile(t, f, c.file(t, "garbage.txt", data), 2)
		wantErrors(t, job, stderr, map[int]string{2: "not valid UTF-8", 3: "control", 4: "control", 6: "not valid UTF-8"})
	})
	t.Run("AllGarbage", func(t *testing.T) {
		code, _, stderr := c.run(t, "process", "--words", c.file(t, "all.bin", []byte("\x00\x01\x02\n\xff\xfe\xfd\n")))
		if code == 0 || !strings.Contains(stderr, "holds no word") || !strings.Contains(stderr, "line 1") {
			t.Fatalf("exit %d, stderr %q: want a failure naming line 1", code, stderr)
		}
	})
	t.Run("EmptyFile", func(t *testing.T) {
		code, _, stderr := c.run(t, "process", "--words", c.file(t, "empty.txt", nil))
		if code != 1 || !strings.Contains(stderr, "the submission holds no word") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("InvalidUTF8", func(t *testing.T) {
		job, stderr := c.submitFile(t, f, c.file(t, "latin1.txt", []byte("caf\xe9\ncafé\nna\xefve\n")), 1)
		wantErrors(t, job, stderr, map[int]string{1: "not valid UTF-8", 3: "not valid UTF-8"})
	})
	t.Run("TenMegabyteLine", func(t *testing.T) {
		data := append([]byte("alpha\n"), bytes.Repeat([]byte("x"), 10<<20)...)
		data = append(data, "\nbeta\n"...)
		job, stderr := c.submitFile(t, f, c.file(t, "long.txt", data), 2)
		wantErrors(t, job, stderr, map[int]string{2: "longer than 1048576 bytes"})
	})
	t.Run("DuplicateWords", func(t *testing.T) {
		job, stderr := c.submitFile(t, f, c.file(t, "dups.txt", []byte("bank\nBank\nriver\nbank\n")), 2)
		wantErrors(t, job, stderr, map[int]string{2: "duplicate of line 1", 4: "duplicate of line 1"})
	})
	t.Run("JSONLFields", func(t *testing.T) {
		data := strings.Join([]string{
			`{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]}`,
			`{"word":"run","definitions":[{"part_of_speech":"verb"}]}`,
			`{"word":"fair","colour":"red"}`,
			`{"word":`,
			`{"definitions":[]}`,
			`{"word":"set","language":"xx"}`,
		}, "\n")
		job, stderr := c.submitFile(t, f, c.file(t, "fields.jsonl", []byte(data)), 1)
		wantErrors(t, job, stderr, map[int]string{2: "missing or empty", 3: "colour", 4: "malformed JSON", 5: "missing", 6: "not one of"})
		for _, want := range []string{"definitions[0].text", "word: missing", "language"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name field %s:\n%s", want, stderr)
			}
		}
	})
	t.Run("UnknownComponent", func(t *testing.T) {
		code, _, stderr := c.run(t, "process", "--components", "synonyms,colour", "--words", c.file(t, "ok.txt", []byte("bank\n")))
		if code == 0 || !strings.Contains(stderr, "colour") {
			t.Fatalf("exit %d, stderr %q: want a failure naming the unknown component", code, stderr)
		}
	})
	t.Run("UnknownIDs", func(t *testing.T) {
		for _, args := range [][]string{{"status", "job_nope"}, {"status", "batch_nope"}, {"cancel", "job_nope"}, {"cancel", "sb_nope"}, {"retry", "job_nope"}} {
			code, _, stderr := c.run(t, args...)
			if code != 2 || !strings.Contains(stderr, `"`+args[1]+`"`) || !strings.Contains(stderr, "no job") {
				t.Errorf("batchsynth %s: exit %d, stderr %q; want exit 2 naming the id", strings.Join(args, " "), code, stderr)
			}
		}
	})
	t.Run("UnusualWords", func(t *testing.T) {
		words := []string{"ice_cream", "New York", "rock 'n' roll", `say "cheese"`, "собака", "日本語", "naïve"}
		var lines []string
		for _, w := range words {
			b, _ := json.Marshal(map[string]any{"word": w, "definitions": []map[string]string{{"part_of_speech": "noun", "text": "a sense of " + w}}})
			lines = append(lines, string(b))
		}
		path := c.file(t, "unusual.jsonl", []byte(strings.Join(lines, "\n")+"\n"))
		code, out, stderr := c.run(t, "process", "--wait", "--json", "--components", "synonyms,examples", "--words", path)
		if code != 0 {
			t.Fatalf("process --wait exited %d\nstdout %s\nstderr %s", code, out, stderr)
		}
		var p struct {
			Job struct {
				ID string `json:"id"`
			} `json:"job"`
			States   map[string]int `json:"states"`
			Total    int            `json:"total"`
			Finished bool           `json:"finished"`
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("process --json printed %q: %v", out, err)
		}
		if !p.Finished || p.Total != len(words) || p.States[string(store.StateSucceeded)] != len(words) {
			t.Fatalf("job %s: finished %v, states %v; want all %d succeeded", p.Job.ID, p.Finished, p.States, len(words))
		}
		ctx := context.Background()
		for _, w := range words {
			var word store.Word
			if err := f.Store.Collection(store.CollWords).FindOne(ctx, bson.M{"text": w}).Decode(&word); err != nil {
				t.Fatalf("word %q not stored as given: %v", w, err)
			}
			var d store.Definition
			if err := f.Store.Collection(store.CollDefinitions).FindOne(ctx, bson.M{"word_id": word.ID}).Decode(&d); err != nil {
				t.Fatal(err)
			}
			if len(d.Synonyms) == 0 || len(d.ExampleIDs) == 0 {
				t.Fatalf("definition of %q not enriched: %+v", w, d)
			}
		}
		auditFleet(t, f, chaos.AuditOptions{})
	})
}
