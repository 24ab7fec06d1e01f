package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func testStore(t *testing.T) *store.Store {
	t.Helper()
	cl, db := testenv.Mongo(t)
	st := store.New(cl, db)
	if err := st.EnsureIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestUpsertSubmittedWords: a second run of the same submission converges on the same documents, and a word
// submitted again with a new definition adds it to the word's synthesis entry.
func TestUpsertSubmittedWords(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// A Floridify word stored without languages counts as English and keeps its id.
	known := store.NewObjectID()
	if _, err := st.Collection(store.CollWords).InsertOne(ctx, store.Word{ID: known, Text: "bank", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	words := []store.InputWord{
		{Word: "bank", Definitions: []store.InputDefinition{{PartOfSpeech: "noun", Text: "sloping land"}}},
		{Word: "élan", Language: "fr", Definitions: []store.InputDefinition{{PartOfSpeech: "noun", Text: "vigour"}}},
	}
	for range 2 {
		ids, err := st.UpsertSubmittedWords(ctx, words, t0)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids[store.WordRef{Language: "en", Text: "bank"}]; got != known {
			t.Fatalf("bank: id %v, want Floridify's %v", got, known)
		}
		if got, want := ids[words[1].Ref()], store.WordID("fr", "élan"); got != want {
			t.Fatalf("élan: id %v, want %v", got, want)
		}
	}
	for name, want := range map[string]int64{store.CollWords: 2, store.CollDefinitions: 2, store.CollDictionaryEntries: 2} {
		n, err := st.Collection(name).CountDocuments(ctx, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: %d documents, want %d", name, n, want)
		}
	}

	more := []store.InputWord{{Word: "bank", Definitions: []store.InputDefinition{{PartOfSpeech: "verb", Text: "tilt"}}}}
	if _, err := st.UpsertSubmittedWords(ctx, more, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var entry store.DictionaryEntry
	if err := st.Collection(store.CollDictionaryEntries).FindOne(ctx, map[string]any{"_id": store.EntryID(known)}).Decode(&entry); err != nil {
		t.Fatal(err)
	}
	want := []store.ObjectID{store.DefinitionID(known, "noun", "sloping land"), store.DefinitionID(known, "verb", "tilt")}
	if !slices.Equal(entry.DefinitionIDs, want) {
		t.Fatalf("entry definitions %v, want %v", entry.DefinitionIDs, want)
	}
	defs, err := st.SortedDefinitionsOfWords(ctx, []store.ObjectID{known})
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 2 || defs[0].ID.Hex() > defs[1].ID.Hex() {
		t.Fatalf("definitions of bank: %+v", defs)
	}
}

// TestImmediateMoves: a request is claimed once; a release gives the attempt back; a settle after the claim was
// released moves nothing.
func TestImmediateMoves(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	req := store.NewRequest{ID: "r1", JobID: "job_1", Kind: store.TargetWord, Word: "bank", Model: "m", Body: []byte("{}"), BodyHash: "h"}
	existing, err := st.InsertRequests(ctx, []store.NewRequest{req}, now)
	if err != nil || len(existing) != 0 {
		t.Fatalf("first insert: existing %v, err %v", existing, err)
	}
	if existing, err = st.InsertRequests(ctx, []store.NewRequest{req}, now); err != nil || !slices.Equal(existing, []string{"r1"}) {
		t.Fatalf("second insert: existing %v, err %v", existing, err)
	}
	if err := st.FollowRequests(ctx, "job_2", existing); err != nil {
		t.Fatal(err)
	}

	pending := func(job string) []string {
		seq, err := st.PendingRequestsOfJob(ctx, job, "m")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for r, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := pending("job_2"); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("pending of the follower: %v", got)
	}

	claimed, err := st.ClaimImmediate(ctx, "r1", "imm_job_1", now)
	if err != nil || claimed == nil || claimed.Attempts != 1 || claimed.BatchID != "imm_job_1" {
		t.Fatalf("claim: %+v, %v", claimed, err)
	}
	if again, err := st.ClaimImmediate(ctx, "r1", "imm_job_2", now); err != nil || again != nil {
		t.Fatalf("second claim: %+v, %v", again, err)
	}
	if moved, err := st.ReleaseImmediate(ctx, claimed, "immediate call failed: 503", now); err != nil || !moved {
		t.Fatalf("release: %v, %v", moved, err)
	}
	if moved, err := st.SucceedImmediate(ctx, claimed, "{}", store.Usage{}, 0, now); err != nil || moved {
		t.Fatalf("settle of a released claim: moved %v, err %v", moved, err)
	}

	claimed, err = st.ClaimImmediate(ctx, "r1", "imm_job_1", now)
	if err != nil || claimed == nil || claimed.Attempts != 1 {
		t.Fatalf("claim after release: %+v, %v", claimed, err)
	}
	if moved, err := st.FailImmediate(ctx, claimed, store.StateDead, "invalid answer", store.Usage{OutputTokens: 3}, 0.5, now); err != nil || !moved {
		t.Fatalf("fail: %v, %v", moved, err)
	}
	if got := pending("job_1"); len(got) != 0 {
		t.Fatalf("pending after dead: %v", got)
	}
	var r store.Request
	if err := st.Collection(store.CollRequests).FindOne(ctx, map[string]any{"_id": "r1"}).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.State != store.StateDead || r.BatchID != "" || r.SettledAt == nil || len(r.Errors) != 1 || r.Usage.OutputTokens != 3 {
		t.Fatalf("dead request: %+v", r)
	}
}
