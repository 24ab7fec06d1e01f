package pipeline

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// TestApplySettles settles result lines and leftovers of batches through applyChunk and settleLeftovers, and
// checks every request's state, attempts, usage and errors, the Floridify write, and that applying twice
// changes nothing.
func TestApplySettles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d, ctx := b.d, b.ctx
	d.Config.MaxAttempts = 3
	now := time.Now().UTC().Truncate(time.Millisecond)
	d.Now = func() time.Time { return now }

	wordID, defID := store.NewObjectID(), store.NewObjectID()
	if _, err := d.Store.Collection(store.CollDefinitions).InsertOne(ctx, bson.M{"_id": defID, "word_id": wordID, "part_of_speech": "noun",
		"text": "sloping land", "synonyms": bson.A{}, "example_ids": bson.A{}}); err != nil {
		t.Fatal(err)
	}
	prior := store.Usage{InputTokens: 10, CachedTokens: 2, OutputTokens: 5}
	req := func(id, batch string, attempts int) store.Request {
		return store.Request{ID: id, JobIDs: []string{"job_1"}, Kind: store.TargetDefinition, WordID: wordID, Word: "bank",
			DefinitionIDs: []store.ObjectID{defID}, Components: []string{"synonyms"}, Model: "gpt-4o-mini",
			State: store.StateSubmitted, Attempts: attempts, BatchID: batch, Usage: prior, CostUSD: 0.5, CreatedAt: now, UpdatedAt: now}
	}
	reqs := []store.Request{
		req("ok", "sb_1", 1), req("refused", "sb_1", 1), req("last", "sb_1", 3), req("invalid", "sb_1", 1),
		req("older", "sb_1", 2), req("noline", "sb_1", 1), req("nolinelast", "sb_1", 3),
		req("givenback", "sb_2", 2),
		req("cancelline", "sb_3", 1), req("cancelnoline", "sb_3", 1),
	}
	docs := make([]any, len(reqs))
	for i := range reqs {
		docs[i] = reqs[i]
	}
	if _, err := d.Store.Collection(store.CollRequests).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	line := store.Usage{InputTokens: 100, OutputTokens: 20}
	results := []openaibatch.Result{
		{CustomID: synthesis.CustomID("ok", 1), OK: true, Content: `{"synonyms":["shore","embankment"]}`, Usage: line},
		{CustomID: synthesis.CustomID("refused", 1), Reason: "refusal", Usage: line},
		{CustomID: synthesis.CustomID("last", 3), Reason: "refusal", Usage: line},
		{CustomID: synthesis.CustomID("invalid", 1), OK: true, Content: `{}`, Usage: line},
		{CustomID: synthesis.CustomID("older", 1), OK: true, Content: `{"synonyms":["x"]}`, Usage: line},
	}
	b1 := &store.Batch{ID: "sb_1", Model: "gpt-4o-mini", State: store.BatchTerminal}
	var counts store.ApplyCounts
	for range 2 { // the second run is a second applier: every compare-and-set matches nothing
		if err := d.applyChunk(ctx, b1, results, &counts); err != nil {
			t.Fatal(err)
		}
	}
	if counts != (store.ApplyCounts{Succeeded: 1, Retried: 2, Dead: 1}) {
		t.Fatalf("counts %+v", counts)
	}
	left, err := d.settleLeftovers(ctx, b1, "batch expired before this request ran", true)
	if err != nil {
		t.Fatal(err)
	}
	if left != (store.ApplyCounts{Retried: 2, Dead: 1}) { // "older" had only a line of its previous attempt
		t.Fatalf("leftovers %+v", left)
	}
	if left, err := d.settleLeftovers(ctx, &store.Batch{ID: "sb_2"}, "batch failed: token_limit_exceeded", false); err != nil || left.Retried != 1 {
		t.Fatalf("given back: %+v %v", left, err)
	}
	var cancelCounts store.ApplyCounts
	b3 := &store.Batch{ID: "sb_3", Model: "gpt-4o-mini", CancelAsked: true}
	if err := d.applyChunk(ctx, b3, []openaibatch.Result{{CustomID: synthesis.CustomID("cancelline", 1), Reason: "refusal"}}, &cancelCounts); err != nil {
		t.Fatal(err)
	}
	if left, err := d.settleLeftovers(ctx, b3, "batch cancelled before this request ran", true); err != nil || left.Dead != 1 || cancelCounts.Dead != 1 {
		t.Fatalf("cancelled: %+v %+v %v", cancelCounts, left, err)
	}

	got := map[string]store.Request{}
	for _, r := range all[store.Request](t, ctx, d.Store.Collection(store.CollRequests), bson.M{}) {
		got[r.ID] = r
	}
	want := map[string]struct {
		state    store.RequestState
		attempts int
		batch    string
		errs     int
		billed   bool
		reason   string
	}{
		"ok":           {store.StateSucceeded, 1, "sb_1", 0, true, ""},
		"refused":      {store.StatePending, 1, "", 1, true, "refusal"},
		"last":         {store.StateDead, 3, "sb_1", 1, true, "refusal"},
		"invalid":      {store.StatePending, 1, "", 1, true, "invalid answer: "},
		"older":        {store.StatePending, 2, "", 1, false, "batch expired"},
		"noline":       {store.StatePending, 1, "", 1, false, "batch expired"},
		"nolinelast":   {store.StateDead, 3, "sb_1", 1, false, "batch expired"},
		"givenback":    {store.StatePending, 1, "", 1, false, "batch failed"},
		"cancelline":   {store.StateCancelled, 1, "sb_3", 1, false, "refusal"},
		"cancelnoline": {store.StateCancelled, 1, "sb_3", 1, false, "batch cancelled"},
	}
	for id, w := range want {
		r := got[id]
		if r.State != w.state || r.Attempts != w.attempts || r.BatchID != w.batch || len(r.Errors) != w.errs {
			t.Errorf("%s: state %s attempts %d batch %q errors %d; want %+v", id, r.State, r.Attempts, r.BatchID, len(r.Errors), w)
		}
		if !strings.HasPrefix(r.LastError, w.reason) {
			t.Errorf("%s: last_error %q, want %q...", id, r.LastError, w.reason)
		}
		wantUsage := prior
		if w.billed {
			wantUsage = prior.Add(line)
		}
		if r.Usage != wantUsage {
			t.Errorf("%s: usage %+v, want %+v", id, r.Usage, wantUsage)
		}
		if settled := w.state.Settled(); settled != (r.SettledAt != nil) {
			t.Errorf("%s: settled_at %v in state %s", id, r.SettledAt, r.State)
		}
	}
	if r := got["ok"]; !r.Applied || r.AppliedAt == nil || r.Result == "" || r.CostUSD <= 0.5 {
		t.Errorf("ok: applied %v at %v result %q cost %v", r.Applied, r.AppliedAt, r.Result, r.CostUSD)
	}
	defs := all[store.Definition](t, ctx, d.Store.Collection(store.CollDefinitions), bson.M{"_id": defID})
	if len(defs) != 1 || !slices.Equal(defs[0].Synonyms, []string{"shore", "embankment"}) {
		t.Fatalf("definition after apply: %+v", defs)
	}

	if _, err := d.Store.Collection(store.CollBatches).InsertOne(ctx, store.Batch{ID: "sb_1", Model: "gpt-4o-mini", State: store.BatchTerminal}); err != nil {
		t.Fatal(err)
	}
	for i, owner := range []string{"a", "b"} {
		leased, err := d.Store.LeaseTerminalBatch(ctx, "sb_1", owner, now, applyLease)
		if err != nil || leased != (i == 0) {
			t.Fatalf("lease by %s: %v %v", owner, leased, err)
		}
	}
	for i := range 2 {
		moved, err := d.Store.FinishApply(ctx, "sb_1", counts, 1.5, 3, now)
		if err != nil || moved != (i == 0) {
			t.Fatalf("finish apply %d: %v %v", i, moved, err)
		}
	}
	bt, err := d.Store.Batch(ctx, "sb_1")
	if err != nil {
		t.Fatal(err)
	}
	if bt.State != store.BatchApplied || bt.Applied != counts || bt.CostUSD != 1.5 || bt.ImmediateUSD != 3 || bt.AppliedAt == nil {
		t.Fatalf("batch after apply: %+v", bt)
	}
}
