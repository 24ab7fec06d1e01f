package pipeline

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/tasks"
)

// InputChunk is how many words one synthesis_job_inputs document holds.
const InputChunk = 1000

// Submission is a job to create.
type Submission struct {
	Source     string
	Words      []store.InputWord
	Errors     []store.InputError
	Components []string // validated names
	Mode       string
	Model      string
	Force      bool
	NoCache    bool // send every request, even one whose rendered body already has a stored answer
	Priority   string
}

// Submit stores the job and its inputs in MongoDB, then enqueues enqueue-words through Redis. It never runs
// a handler itself. If the enqueue fails the job stays "submitted" and the sweep enqueues it later.
func (d *Deps) Submit(ctx context.Context, s Submission) (*store.Job, error) {
	if len(s.Words) == 0 {
		return nil, fmt.Errorf("no word to synthesize")
	}
	if len(s.Components) == 0 {
		return nil, fmt.Errorf("no component requested")
	}
	if s.Mode == "" {
		s.Mode = d.Config.Mode
	}
	if s.Model == "" {
		s.Model = d.Config.Model
	}
	valid := false
	for _, m := range synthesis.Modes() {
		valid = valid || m == s.Mode
	}
	if !valid {
		return nil, fmt.Errorf("mode %q: want one of %v", s.Mode, synthesis.Modes())
	}
	now := d.now()
	job := &store.Job{
		ID: NewID("job"), Source: s.Source, Components: s.Components, Mode: s.Mode, Model: s.Model,
		Force: s.Force, NoCache: s.NoCache, Priority: s.Priority, Status: store.JobSubmitted,
		Chunks: (len(s.Words) + InputChunk - 1) / InputChunk, Expanded: []int{},
		WordsTotal: len(s.Words), WordsMissing: []string{}, InputErrors: s.Errors,
		CreatedAt: now, UpdatedAt: now,
	}
	if job.InputErrors == nil {
		job.InputErrors = []store.InputError{}
	}
	// Inputs first, job last: a job document always has all its inputs. The job id is new, so its inputs are
	// plain inserts (one command per 50 chunks): nothing can hold their ids yet.
	var models []mongo.WriteModel
	for seq := 0; seq < job.Chunks; seq++ {
		end := min((seq+1)*InputChunk, len(s.Words))
		models = append(models, mongo.NewInsertOneModel().
			SetDocument(store.JobInput{ID: fmt.Sprintf("%s:%d", job.ID, seq), JobID: job.ID, Seq: seq, Words: s.Words[seq*InputChunk : end]}))
		if len(models) == 50 || seq == job.Chunks-1 {
			if err := d.Store.BulkWrite(ctx, d.Store.Inputs, models, false); err != nil {
				return nil, fmt.Errorf("error storing job inputs: %w", err)
			}
			models = models[:0]
		}
	}
	if _, err := d.Store.Jobs.InsertOne(ctx, job); err != nil {
		return nil, fmt.Errorf("error storing job: %w", err)
	}
	t, err := tasks.NewEnqueueWordsTask(job.ID)
	if err != nil {
		return nil, err
	}
	if err := tasks.Enqueue(d.Queue, t); err != nil {
		return job, fmt.Errorf("job %s stored, but enqueueing failed (the sweep will retry): %w", job.ID, err)
	}
	d.log().Info("job submitted", "job_id", job.ID, "words", len(s.Words), "components", s.Components, "mode", s.Mode, "model", s.Model)
	return job, nil
}
