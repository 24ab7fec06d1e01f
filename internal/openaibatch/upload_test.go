package openaibatch_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/testenv"
)

// TestUploadStreamed uploads a file against the emulator with server errors injected: the SDK's retries
// must resend the whole streamed body, and the stored file must be the uploaded bytes exactly.
func TestUploadStreamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "input.jsonl")
	bench.WriteInput(t, path, bench.DefaultCorpus(t).Lines(300))
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	faults := emulator.Faults{Rate500: 0.4, Rate503: 0.2}
	emu, base := testenv.Emulator(t, emulator.Config{Seed: 5, Faults: faults})
	c := openaibatch.New(openaibatch.Options{APIKey: "sk-test", BaseURL: base, MaxRetries: 10, Timeout: time.Minute})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 5 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		id, err := c.Upload(ctx, "input.jsonl", f)
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		emu.SetFaults(emulator.Faults{})
		rc, err := c.Content(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("upload %d: stored %d bytes, want the %d uploaded (%v)", i, len(got), len(want), err)
		}
		emu.SetFaults(faults)
	}
	st := emu.Stats()
	n := st.Faults[emulator.Fault500] + st.Faults[emulator.Fault503]
	if n == 0 {
		t.Fatal("no fault was injected: the retries were not exercised")
	}
	t.Logf("5 uploads through %d injected 5xx answers", n)
}
