package pipeline

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// TestFinishIfDone: a running job is marked done once every request is settled (succeeded, dead or
// cancelled) and every success is applied, and not before.
func TestFinishIfDone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, st := b.ctx, b.d.Store
	job := newJob("job1", synthesis.ModePacked, []string{"cefr_level", "register"})
	b.expand(t, job, testWords)
	job.Status = store.JobRunning
	if _, err := st.Jobs.InsertOne(ctx, job); err != nil {
		t.Fatal(err)
	}
	reqs := all[store.Request](t, ctx, st.Requests, bson.M{"job_ids": job.ID})
	if len(reqs) < 3 {
		t.Fatalf("%d requests, want at least 3", len(reqs))
	}
	check := func(step string, want bool) {
		t.Helper()
		done, err := b.d.FinishIfDone(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		j, err := st.Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done != want || (j.Status == store.JobDone) != want || (j.FinishedAt != nil) != want {
			t.Fatalf("%s: FinishIfDone %v, job %s (finished at %v); want done %v", step, done, j.Status, j.FinishedAt, want)
		}
	}
	set := func(id string, fields bson.M) {
		t.Helper()
		if _, err := st.Requests.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": fields}); err != nil {
			t.Fatal(err)
		}
	}
	check("all pending", false)
	for _, r := range reqs[1:] {
		set(r.ID, bson.M{"state": store.StateSucceeded, "applied": true})
	}
	set(reqs[0].ID, bson.M{"state": store.StateSubmitted})
	check("one submitted", false)
	set(reqs[0].ID, bson.M{"state": store.StateSucceeded, "applied": false})
	check("one success not applied", false)
	set(reqs[0].ID, bson.M{"state": store.StateDead})
	set(reqs[1].ID, bson.M{"state": store.StateCancelled})
	check("settled: successes applied, one dead, one cancelled", true)
	check("again", true)
}
