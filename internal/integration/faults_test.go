package integration

import (
	"context"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/chaos"
	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testfleet"
)

// The fault tests run a small job (faultWords words, about five definitions each) through an in-test fleet
// whose emulator injects one kind of fault, then audit MongoDB against the emulator's own records with
// chaos.Audit: every request succeeded or dead with a reason, no example duplicated, every emulator batch
// maps to exactly one batch document and back, no request applied (or paid for) twice, billed tokens in
// MongoDB equal to the tokens the emulator billed.

const faultWords = 20

var faultComponents = []string{"synonyms", "examples", "cefr_level"}

// faultFleet starts a fleet for one fault test: small input files (several batches per job) and the
// emulator's faults as given.
func faultFleet(t *testing.T, emu emulator.Config, tune func(*config.Config), o ...func(*testfleet.Options)) *testfleet.Fleet {
	t.Helper()
	if emu.Seed == 0 {
		emu.Seed = 7
	}
	opts := testfleet.Options{Workers: 2, Emulator: emu, Tune: func(c *config.Config) {
		c.MaxLines = 25
		c.MaxAttempts = 4
		if tune != nil {
			tune(c)
		}
	}}
	for _, f := range o {
		f(&opts)
	}
	return testfleet.Start(t, opts)
}

// submit sends the first n words of the sample as one packed job.
func submit(t *testing.T, f *testfleet.Fleet, n int) *store.Job {
	t.Helper()
	job, err := f.Deps.Submit(context.Background(), pipeline.Submission{Source: t.Name(), Words: firstWords(t, n), Components: faultComponents, Mode: "packed"})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// runFault submits the job, waits for it to finish and audits the result.
func runFault(t *testing.T, f *testfleet.Fleet, timeout time.Duration) (*pipeline.JobProgress, *chaos.Report) {
	t.Helper()
	job := submit(t, f, faultWords)
	p := waitFinished(t, f.Deps, job.ID, timeout)
	return p, auditFleet(t, f, chaos.AuditOptions{})
}

// auditFleet runs chaos.Audit and fails the test on any broken rule.
func auditFleet(t *testing.T, f *testfleet.Fleet, o chaos.AuditOptions) *chaos.Report {
	t.Helper()
	// Let any apply still settling a batch the job no longer needs finish: the audit wants a drained fleet.
	waitDrained(t, f, 60*time.Second)
	r, err := chaos.Audit(context.Background(), f.Store, f.Emulator.Batches(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audit: %s", r)
	t.Logf("emulator faults: %v", f.Emulator.Stats().Faults)
	if err := r.Err(); err != nil {
		t.Fatalf("audit found broken rules:\n%v", err)
	}
	return r
}

// waitDrained waits until no batch document is in flight and no request is pending or in a batch.
func waitDrained(t *testing.T, f *testfleet.Fleet, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		nb, err := f.Store.Batches.CountDocuments(ctx, map[string]any{"state": map[string]any{"$nin": []string{store.BatchApplied, store.BatchAbandoned}}})
		if err != nil {
			t.Fatal(err)
		}
		nr, err := f.Store.Requests.CountDocuments(ctx, map[string]any{"state": map[string]any{"$in": []string{store.StatePending, store.StateClaimed, store.StateSubmitted}}})
		if err != nil {
			t.Fatal(err)
		}
		if nb == 0 && nr == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %s: %d batches in flight, %d requests unsettled", timeout, nb, nr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func requireFault(t *testing.T, f *testfleet.Fleet, kinds ...emulator.FaultKind) {
	t.Helper()
	st := f.Emulator.Stats()
	for _, k := range kinds {
		if st.Faults[k] == 0 {
			t.Errorf("the emulator never injected %s (faults %v): the test proved nothing about it", k, st.Faults)
		}
	}
}

// TestFaultHTTP429RetryAfter: a third of all API calls answer 429 with Retry-After. Idempotent calls are
// retried by the client after the advertised delay; a 429 on create is an unknown outcome that the next
// build reconciles by metadata before creating.
func TestFaultHTTP429RetryAfter(t *testing.T) {
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{Rate429: 0.3, RetryAfter: 200 * time.Millisecond}}, nil)
	p, _ := runFault(t, f, 3*time.Minute)
	requireFault(t, f, emulator.Fault429)
	if p.States[store.StateSucceeded] != p.Total {
		t.Fatalf("want every request succeeded despite 429s, got %v", p.States)
	}
}

// TestFaultLostCreateResponse: half the batch creates succeed at the emulator but their answer is lost (a
// 500 or a dropped connection). The builder never creates blindly again: it finds the batch by metadata.
func TestFaultLostCreateResponse(t *testing.T) {
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateLoseCreate: 0.5}}, nil)
	p, r := runFault(t, f, 60*time.Second)
	requireFault(t, f, emulator.FaultLoseCreate)
	if p.States[store.StateSucceeded] != p.Total {
		t.Fatalf("want every request succeeded, got %v", p.States)
	}
	if st := f.Emulator.Stats(); st.BatchesCreated != int64(r.EmulatorBatches) || r.EmulatorBatches != r.Batches-r.Abandoned {
		t.Fatalf("emulator created %d batches (%d lost answers), MongoDB holds %d created documents", st.BatchesCreated, st.CreateLost, r.Batches-r.Abandoned)
	}
}
