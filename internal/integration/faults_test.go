package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/bench"
	"github.com/floridify/batchsynth/internal/chaos"
	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
	"github.com/floridify/batchsynth/internal/testfleet"
)

// The fault tests run a small job (faultWords words, about five definitions each) through an in-test fleet
// whose emulator injects one kind of fault, then audit MongoDB against the emulator's own records with
// chaos.Audit: every request succeeded or dead with a reason, no example duplicated, every emulator batch
// maps to exactly one batch document and back, no request applied (or paid for) twice, billed tokens in
// MongoDB equal to the tokens the emulator billed.

const faultWords = 20

var faultComponents = []string{"synonyms", "examples", "cefr_level"}

// parallel moves this test binary onto out-of-process FerretDBs (testenv.UseMongoServers: under -race an
// in-process one is most of the run time) and runs the test in parallel with the others. Call it first.
func parallel(t *testing.T) {
	t.Helper()
	outOfProcess(t)
	t.Parallel()
}

// outOfProcess moves this test binary onto out-of-process FerretDBs. Two servers: the tests own their
// databases, and FerretDB serves one command at a time, so tests that share a server queue behind each other.
func outOfProcess(t *testing.T) {
	t.Helper()
	if err := testenv.UseMongoServers(2); err != nil {
		t.Fatal(err)
	}
}

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
	job, err := f.Deps.Submit(context.Background(), pipeline.Submission{Source: t.Name(), Words: bench.Words(t, n), Components: faultComponents, Mode: "packed"})
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
		nb, err := f.Store.Collection(store.CollBatches).CountDocuments(ctx, bson.M{"state": bson.M{"$nin": bson.A{store.BatchApplied, store.BatchAbandoned}}})
		if err != nil {
			t.Fatal(err)
		}
		nr, err := f.Store.Collection(store.CollRequests).CountDocuments(ctx, bson.M{"state": bson.M{"$in": bson.A{store.StatePending, store.StateClaimed, store.StateSubmitted}}})
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

// allSucceeded fails the test unless every request of the job succeeded.
func allSucceeded(t *testing.T, p *pipeline.JobProgress) {
	t.Helper()
	if p.Total == 0 || p.States[store.StateSucceeded] != p.Total {
		t.Fatalf("want all %d requests succeeded, got %v", p.Total, p.States)
	}
}

// deadAfterMaxAttempts checks that every dead request used up exactly BATCHSYNTH_MAX_ATTEMPTS attempts.
func deadAfterMaxAttempts(t *testing.T, f *testfleet.Fleet) {
	t.Helper()
	var dead []store.Request
	cur, err := f.Store.Collection(store.CollRequests).Find(context.Background(), bson.M{"state": store.StateDead})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(context.Background(), &dead); err != nil {
		t.Fatal(err)
	}
	for _, r := range dead {
		if r.Attempts != f.Config.MaxAttempts || len(r.Errors) < f.Config.MaxAttempts {
			t.Errorf("dead request %s: %d attempts, %d recorded errors; want %d (BATCHSYNTH_MAX_ATTEMPTS)", r.ID, r.Attempts, len(r.Errors), f.Config.MaxAttempts)
		}
	}
}

// TestFaultHTTP429RetryAfter: 30% of all API calls answer 429 with Retry-After. Idempotent calls are
// retried by the client after the advertised delay; a 429 on create is an unknown outcome that the next
// build reconciles by metadata before creating.
func TestFaultHTTP429RetryAfter(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{Rate429: 0.3, RetryAfter: 200 * time.Millisecond}}, nil)
	p, _ := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.Fault429)
	allSucceeded(t, p)
}

// TestFaultHTTP5xx: 15% of API calls answer 500 and 15% 503: retried with backoff, creates reconciled.
func TestFaultHTTP5xx(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{Rate500: 0.15, Rate503: 0.15}}, nil)
	p, _ := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.Fault500, emulator.Fault503)
	allSucceeded(t, p)
}

// TestFaultSlowResponses: 30% of API calls take 2 s, past the client's 500 ms timeout. Each such call is an
// error (a create's outcome is unknown and reconciled); nothing is lost or created twice.
func TestFaultSlowResponses(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateSlow: 0.3, SlowDelay: 2 * time.Second}}, nil,
		func(o *testfleet.Options) { o.OpenAITimeout = 500 * time.Millisecond })
	p, _ := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultSlow)
	allSucceeded(t, p)
}

// TestFaultLostCreateResponse: half the batch creates succeed at the emulator but their answer is lost (a
// 500 or a dropped connection). The builder never creates blindly again: it finds the batch by metadata.
func TestFaultLostCreateResponse(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateLoseCreate: 0.5}}, nil)
	p, r := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultLoseCreate)
	allSucceeded(t, p)
	if st := f.Emulator.Stats(); st.BatchesCreated != int64(r.EmulatorBatches) || r.EmulatorBatches != r.Batches-r.Abandoned {
		t.Fatalf("emulator created %d batches (%d answers lost), MongoDB holds %d created documents", st.BatchesCreated, st.CreateLost, r.Batches-r.Abandoned)
	}
}

// TestFaultFileNotFoundAfterUpload: every create within 1.5 s of its upload answers 400 "Cannot find file".
// Nothing was created, so the batch goes back to uploaded and the retry creates it.
func TestFaultFileNotFoundAfterUpload(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateFileNotFound: 1, FileNotFoundWindow: 1500 * time.Millisecond}}, nil)
	p, r := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultFileNotFound)
	allSucceeded(t, p)
	if r.Abandoned > 0 {
		t.Fatalf("%d batches abandoned: a briefly missing file must be waited for, not given up on", r.Abandoned)
	}
}

// TestFaultBatchValidationFailed: batches that fail validation send their requests back to pending (the
// attempt counts) until BATCHSYNTH_MAX_ATTEMPTS, then dead with the batch's error as the reason.
func TestFaultBatchValidationFailed(t *testing.T) {
	parallel(t)
	t.Run("Synthetic", func(t *testing.T) {
		t.Parallel()
		f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateBatchFail: 0.4}}, nil)
		p, _ := runFault(t, f, 2*time.Minute)
		requireFault(t, f, emulator.FaultBatchFail)
		deadAfterMaxAttempts(t, f)
		if p.States[store.StateSucceeded] == 0 {
			t.Fatalf("nothing succeeded: %v", p.States)
		}
	})
	t.Run("TooManyTasks", func(t *testing.T) {
		t.Parallel()
		// The emulator takes 10 lines per batch, the fleet sends 25: every batch fails too_many_tasks.
		f := faultFleet(t, emulator.Config{MaxLines: 10}, func(c *config.Config) { c.MaxAttempts = 2 })
		p, _ := runFault(t, f, 2*time.Minute)
		if p.States[store.StateDead] != p.Total {
			t.Fatalf("want every request dead, got %v", p.States)
		}
		deadAfterMaxAttempts(t, f)
		var r store.Request
		if err := f.Store.Collection(store.CollRequests).FindOne(context.Background(), bson.M{"state": store.StateDead}).Decode(&r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.LastError, "too_many_tasks") {
			t.Fatalf("dead request's reason %q does not name too_many_tasks", r.LastError)
		}
	})
}

// TestFaultTokenLimitExceeded: the emulator's per-model enqueued-token budget admits one batch at a time
// and the fleet has no budget of its own, so it over-submits. Refused batches hold that model's builds back
// and are retried later without using up their requests' attempts; in the end everything succeeds.
func TestFaultTokenLimitExceeded(t *testing.T) {
	parallel(t)
	// Each batch stays in progress 6 s, so the builder (which creates the job's four batches in one go) is
	// always refused for some of them, however slow the machine.
	f := faultFleet(t, emulator.Config{InProgressFor: 6 * time.Second, TokenBudget: map[string]int64{"gpt-4o-mini": 4000}}, nil)
	p, _ := runFault(t, f, 3*time.Minute)
	allSucceeded(t, p)
	refused := 0
	for _, b := range f.Emulator.Batches() {
		for _, e := range b.Errors {
			if e.Code == "token_limit_exceeded" {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Fatal("the emulator never refused a batch for its token budget: the test proved nothing")
	}
	n, err := f.Store.Collection(store.CollRequests).CountDocuments(context.Background(), bson.M{"attempts": bson.M{"$ne": 1}})
	if err != nil || n != 0 {
		t.Fatalf("%d requests used more than one attempt (%v): a token-limit refusal must not count", n, err)
	}
	held, err := f.Store.Collection(store.CollModelHold).CountDocuments(context.Background(), bson.M{"_id": "gpt-4o-mini", "reason": bson.M{"$regex": "token_limit_exceeded"}})
	if err != nil || held != 1 {
		t.Fatalf("want a build hold recorded for gpt-4o-mini, found %d (%v)", held, err)
	}
	t.Logf("%d batches refused for the token budget", refused)
}

// TestFaultLine4xx: 30% of lines are per-request 400s in the error file (status_code set, top-level error
// null): failed attempts, retried until BATCHSYNTH_MAX_ATTEMPTS, then dead with the status as the reason.
func TestFaultLine4xx(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateLine4xx: 0.3}}, nil)
	runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultLine4xx)
	deadAfterMaxAttempts(t, f)
	reasonSeen(t, f, "status 400")
}

// TestFaultRefusal: 30% of lines are refusals (content null, refusal set): failed attempts, never written.
func TestFaultRefusal(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateRefusal: 0.3}}, nil)
	runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultRefusal)
	deadAfterMaxAttempts(t, f)
	reasonSeen(t, f, "refusal")
}

// TestFaultLengthCutOff: 30% of lines stop at finish_reason "length" with cut JSON: failed attempts.
func TestFaultLengthCutOff(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateLength: 0.3}}, nil)
	runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultLength)
	deadAfterMaxAttempts(t, f)
	reasonSeen(t, f, "finish_reason length")
}

// TestFaultSchemaInvalid: half the lines are valid JSON that breaks the schema. Each is a failed attempt and
// never a partial write: while a request waits for its next attempt, and after it died, its definition holds
// none of the fields it asked for. A watcher checks that all along the run; the audit checks it at the end.
func TestFaultSchemaInvalid(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateInvalidSchema: 0.5}}, func(c *config.Config) { c.MaxAttempts = 2 })
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan []string, 1)
	go func() { watched <- watchNoPartialWrites(ctx, f) }()
	_, r := runFault(t, f, 2*time.Minute)
	cancel()
	if bad := <-watched; len(bad) > 0 {
		t.Fatalf("fields written for a failed attempt:\n%s", strings.Join(bad, "\n"))
	}
	requireFault(t, f, emulator.FaultInvalidSchema)
	deadAfterMaxAttempts(t, f)
	reasonSeen(t, f, "invalid answer")
	if r.States[store.StateDead] == 0 || r.States[store.StateSucceeded] == 0 {
		t.Fatalf("want both dead and succeeded requests at this rate, got %v", r.States)
	}
}

// watchNoPartialWrites samples, until ctx ends, the definitions of requests that failed an attempt and have
// not succeeded, and returns every one that holds a field of its components (one request per definition
// here, so any such field would be the failed attempt's).
func watchNoPartialWrites(ctx context.Context, f *testfleet.Fleet) []string {
	var bad []string
	for ctx.Err() == nil {
		var reqs []store.Request
		cur, err := f.Store.Collection(store.CollRequests).Find(ctx, bson.M{"state": bson.M{"$ne": store.StateSucceeded}, "errors.0": bson.M{"$exists": true}},
			options.Find().SetProjection(bson.M{"definition_ids": 1, "components": 1, "state": 1}))
		if err == nil && cur.All(ctx, &reqs) == nil {
			for _, r := range reqs {
				for _, id := range r.DefinitionIDs {
					var d store.Definition
					if f.Store.Collection(store.CollDefinitions).FindOne(ctx, bson.M{"_id": id}).Decode(&d) != nil {
						continue
					}
					if len(d.Synonyms) > 0 || len(d.ExampleIDs) > 0 || d.CEFRLevel != nil {
						// The request may have succeeded (and been written) since it was read: a success is
						// settled before its fields are written, so a request still unsettled now was not.
						var now store.Request
						if f.Store.Collection(store.CollRequests).FindOne(ctx, bson.M{"_id": r.ID}).Decode(&now) != nil || now.State == store.StateSucceeded {
							continue
						}
						bad = append(bad, fmt.Sprintf("request %s (%s) failed an attempt, yet definition %s has synonyms %v, %d examples, cefr %v",
							r.ID, r.State, id.Hex(), d.Synonyms, len(d.ExampleIDs), d.CEFRLevel))
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	return bad
}

// TestFaultShuffledOutput: output and error lines come back in random order (with some 4xx lines so that
// both files exist); results are joined by custom_id, never by position.
func TestFaultShuffledOutput(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{Shuffle: true, RateLine4xx: 0.2}}, nil)
	runFault(t, f, 2*time.Minute)
	// Every success went to the request it answers: the emulator's content names the word it was asked about.
	var reqs []store.Request
	cur, err := f.Store.Collection(store.CollRequests).Find(context.Background(), bson.M{"state": store.StateSucceeded})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(context.Background(), &reqs); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if !strings.Contains(r.Result, fmt.Sprintf("%q", r.Word)) && !strings.Contains(r.Result, r.Word) {
			t.Fatalf("request %s for %q holds an answer about another word: %.200s", r.ID, r.Word, r.Result)
		}
	}
}

// TestFaultExpiryPartialOutput: half the batches expire halfway through: the lines that ran are applied,
// the batch_expired ones go back to pending for a new batch.
func TestFaultExpiryPartialOutput(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{InProgressFor: time.Second, Faults: emulator.Faults{RateExpire: 0.5}}, nil)
	p, _ := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultExpire)
	partial := 0
	for _, b := range f.Emulator.Batches() {
		if b.Status == emulator.StatusExpired && b.Outcomes[emulator.OutcomeSuccess] > 0 && b.Outcomes[emulator.OutcomeExpired] > 0 {
			partial++
		}
	}
	if partial == 0 {
		t.Fatal("no batch expired with partial output")
	}
	if p.States[store.StateSucceeded] == 0 {
		t.Fatalf("nothing succeeded: %v", p.States)
	}
	reasonSeen(t, f, "batch_expired")
}

// TestFaultZeroSuccessNoOutput: half the batches end completed with zero successes and no output file:
// every line is an error line; all go back to pending.
func TestFaultZeroSuccessNoOutput(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateZeroSuccess: 0.5}}, nil)
	p, _ := runFault(t, f, 2*time.Minute)
	requireFault(t, f, emulator.FaultZeroSuccess)
	n, err := f.Store.Collection(store.CollBatches).CountDocuments(context.Background(), bson.M{"openai_status": "completed", "output_file_id": bson.M{"$exists": false}, "state": store.BatchApplied})
	if err != nil || n == 0 {
		t.Fatalf("want an applied completed batch without an output file, found %d (%v)", n, err)
	}
	if p.States[store.StateSucceeded] == 0 {
		t.Fatalf("nothing succeeded: %v", p.States)
	}
	deadAfterMaxAttempts(t, f)
}

// TestFaultCancelBatchPartialOutput: a batch cancelled while in progress (Deps.CancelBatch, as `batchsynth
// cancel BATCH` does) goes cancelling -> cancelled; the lines it finished are applied and the rest are
// marked cancelled, not sent again. The job's other batches are untouched.
func TestFaultCancelBatchPartialOutput(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{InProgressFor: 6 * time.Second, CancellingFor: time.Second}, nil)
	ctx := context.Background()
	job := submit(t, f, faultWords)
	// Wait for a batch with some lines done, then cancel it.
	var target emulator.BatchRecord
	deadline := time.Now().Add(time.Minute)
	for target.ID == "" {
		if time.Now().After(deadline) {
			t.Fatal("no batch got in progress with lines done")
		}
		for _, b := range f.Emulator.Batches() {
			if b.Status == emulator.StatusInProgress && b.RequestCounts.Completed > 0 && b.RequestCounts.Completed < b.RequestCounts.Total {
				target = b
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	ours := target.Metadata[openaibatch.MetadataBatchID]
	if err := f.Deps.CancelBatch(ctx, target.ID); err != nil { // by OpenAI's id, as a user might pass it
		t.Fatal(err)
	}
	p := waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	auditFleet(t, f, chaos.AuditOptions{})
	b, err := f.Store.Batch(ctx, ours)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != store.BatchApplied || b.OpenAIStatus != "cancelled" || !b.CancelAsked {
		t.Fatalf("cancelled batch %s: state %s, OpenAI %s, cancel asked %v", b.ID, b.State, b.OpenAIStatus, b.CancelAsked)
	}
	states, err := f.Store.StateCounts(ctx, bson.M{"errors.batch_id": ours})
	if err != nil {
		t.Fatal(err)
	}
	succeeded, err := f.Store.StateCounts(ctx, bson.M{"batch_id": ours})
	if err != nil {
		t.Fatal(err)
	}
	if succeeded[store.StateSucceeded] == 0 || states[store.StateCancelled] == 0 || states[store.StatePending]+states[store.StateClaimed]+states[store.StateSubmitted] > 0 {
		t.Fatalf("cancelled batch %s: want partial output applied and the rest cancelled; succeeded %v, others %v", b.ID, succeeded, states)
	}
	if got := succeeded[store.StateSucceeded] + states[store.StateCancelled]; got != b.RequestCount {
		t.Fatalf("batch of %d requests: %d succeeded + %d cancelled", b.RequestCount, succeeded[store.StateSucceeded], states[store.StateCancelled])
	}
	if p.States[store.StateCancelled] != states[store.StateCancelled] || p.States[store.StateSucceeded]+p.States[store.StateCancelled] != p.Total {
		t.Fatalf("job: %v; only the cancelled batch's unfinished lines should be cancelled (%d)", p.States, states[store.StateCancelled])
	}
	t.Logf("cancelled batch: %d succeeded, %d cancelled", succeeded[store.StateSucceeded], states[store.StateCancelled])
}

// TestFaultCancelJob: Deps.CancelJob (`batchsynth cancel JOB`) while batches are in flight and requests
// still wait for the token budget: pending requests are cancelled, in-flight batches cancelled at OpenAI
// with what they finished applied; the job ends cancelled with every request succeeded or cancelled.
func TestFaultCancelJob(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{InProgressFor: 6 * time.Second, CancellingFor: time.Second},
		func(c *config.Config) { c.TokenBudget = 4000 }) // about one batch in flight at a time: the rest waits
	ctx := context.Background()
	job := submit(t, f, faultWords)
	deadline := time.Now().Add(time.Minute)
	for {
		n, _ := f.Store.Collection(store.CollBatches).CountDocuments(ctx, bson.M{"state": store.BatchSubmitted})
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch got submitted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // some lines done
	n, err := f.Deps.CancelJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	auditFleet(t, f, chaos.AuditOptions{})
	if p.Job.Status != store.JobCancelled {
		t.Fatalf("job status %s, want cancelled", p.Job.Status)
	}
	if n == 0 || p.States[store.StateCancelled] <= n || p.States[store.StateSucceeded]+p.States[store.StateCancelled] != p.Total {
		t.Fatalf("cancelled %d pending requests; job ends %v: want pending and unfinished in-flight requests cancelled, the rest succeeded", n, p.States)
	}
}

// TestRetryJobResubmitsDead: with BATCHSYNTH_MAX_ATTEMPTS=1 and refusals, some requests die at once;
// Deps.RetryJob (`batchsynth retry JOB`) puts exactly those back, and with the fault gone they succeed.
func TestRetryJobResubmitsDead(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{Faults: emulator.Faults{RateRefusal: 0.4}}, func(c *config.Config) { c.MaxAttempts = 1 })
	ctx := context.Background()
	job := submit(t, f, faultWords)
	p := waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	dead := p.States[store.StateDead]
	if dead == 0 {
		t.Fatalf("no request died: %v", p.States)
	}
	deadAfterMaxAttempts(t, f)
	f.Emulator.SetFaults(emulator.Faults{})
	n, err := f.Deps.RetryJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n != dead {
		t.Fatalf("retry requeued %d requests, %d were dead", n, dead)
	}
	p = waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	allSucceeded(t, p)
	auditFleet(t, f, chaos.AuditOptions{ReusedAttempts: true})
}

// reasonSeen checks that some request recorded a failed attempt whose reason contains want.
func reasonSeen(t *testing.T, f *testfleet.Fleet, want string) {
	t.Helper()
	n, err := f.Store.Collection(store.CollRequests).CountDocuments(context.Background(), bson.M{"errors.reason": bson.M{"$regex": regexp.QuoteMeta(want)}})
	if err != nil || n == 0 {
		t.Fatalf("no request recorded a failed attempt with reason %q (%v)", want, err)
	}
}
