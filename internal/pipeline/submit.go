package pipeline

import (
	"context"
	"fmt"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/tasks"
)

// InputChunk is how many words one synthesis_job_inputs document holds.
const InputChunk = store.InputChunk

// Submission is a job to create.
type Submission struct {
	Source     string
	Words      []store.InputWord
	Errors     []store.InputError
	Components []string // validated names
	Mode       string
	Model      string
	Force      bool
	NoCache    bool   // send every request, even one whose rendered body already has a stored answer
	Priority   string // normal (the default) or urgent
}

// Submit stores the job and its inputs in MongoDB, then enqueues enqueue-words through Redis. It never runs
// a handler itself. If the enqueue fails the job stays "submitted" and the sweep enqueues it later. A
// submission the rule refuses (CheckSubmission) is an *InvalidInputError, and nothing is stored.
func (d *Deps) Submit(ctx context.Context, s Submission) (*store.Job, error) {
	if err := d.CheckSubmission(&s); err != nil {
		return nil, err
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
	if err := d.Store.InsertJob(ctx, job, s.Words); err != nil {
		return nil, err
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
