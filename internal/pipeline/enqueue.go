package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/tasks"
)

// Enqueue expands a job: upserts inline words and definitions into Floridify's collections, decides which
// pieces are missing, and writes one synthesis_requests document per piece (insert-if-absent on a
// deterministic key). Chunks already expanded are skipped on a re-run; re-expanding one changes nothing.
func (d *Deps) Enqueue(ctx context.Context, jobID string) error {
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return err
	}
	switch job.Status {
	case store.JobCancelled, store.JobDone:
		return nil
	case store.JobRunning:
		// Expanded already; only the immediate run or the build trigger may have been lost.
		if handled, err := d.AfterExpand(ctx, job); handled {
			return err
		}
		return d.triggerBuild(job.Model, true)
	}
	if _, err := d.Store.StartExpansion(ctx, jobID, d.now()); err != nil {
		return err
	}
	for seq := 0; seq < job.Chunks; seq++ {
		if slices.Contains(job.Expanded, seq) {
			continue
		}
		in, err := d.Store.JobInputChunk(ctx, jobID, seq)
		if err != nil {
			return fmt.Errorf("error loading input chunk %d of job %s: %w", seq, jobID, err)
		}
		n, missing, ierrs, err := d.expandChunk(ctx, job, in.Words)
		if err != nil {
			return fmt.Errorf("job %s chunk %d: %w", jobID, seq, err)
		}
		if _, err := d.Store.RecordExpandedChunk(ctx, jobID,
			store.ExpandedChunk{Seq: seq, Definitions: n, WordsMissing: missing, InputErrors: ierrs}, d.now()); err != nil {
			return err
		}
		d.log().Debug("job chunk expanded", "job_id", jobID, "chunk", seq, "definitions", n)
	}
	if _, err := d.Store.FinishExpansion(ctx, jobID, d.now()); err != nil {
		return err
	}
	d.log().Info("job expanded", "job_id", jobID)
	if handled, err := d.AfterExpand(ctx, job); handled {
		return err
	}
	return d.triggerBuild(job.Model, true)
}

func (d *Deps) triggerBuild(model string, flush bool) error {
	t, err := tasks.NewBuildBatchTask(model, flush)
	if err != nil {
		return err
	}
	return tasks.Enqueue(d.Queue, t)
}

func langOf(w store.InputWord) string { return w.Lang() }

// expandChunk returns the number of definitions considered, words not found, and per-word errors.
func (d *Deps) expandChunk(ctx context.Context, job *store.Job, words []store.InputWord) (int, []string, []store.InputError, error) {
	now := d.now()
	var inline, named []store.InputWord
	for _, w := range words {
		if len(w.Definitions) > 0 {
			inline = append(inline, w)
		} else {
			named = append(named, w)
		}
	}
	wordIDs := map[store.WordRef]store.ObjectID{}
	if len(inline) > 0 {
		ids, err := d.Store.UpsertSubmittedWords(ctx, inline, now)
		if err != nil {
			return 0, nil, nil, err
		}
		addWordIDs(wordIDs, ids)
	}
	var missing []string
	if len(named) > 0 {
		texts := make([]string, 0, len(named))
		for _, w := range named {
			texts = append(texts, w.Word)
		}
		found, err := d.Store.WordIDsByText(ctx, texts)
		if err != nil {
			return 0, nil, nil, err
		}
		addWordIDs(wordIDs, found)
		for _, w := range named {
			if _, ok := wordIDs[w.Ref()]; !ok {
				missing = append(missing, w.Word)
			}
		}
	}
	// Load every definition of the chunk's words (Floridify's, not only the submitted ones: a plain-text
	// submission means "this word's definitions").
	ids := make([]store.ObjectID, 0, len(wordIDs))
	idWord := map[store.ObjectID]store.InputWord{}
	for _, w := range words {
		id, ok := wordIDs[w.Ref()]
		if !ok {
			continue
		}
		if _, dup := idWord[id]; !dup {
			ids = append(ids, id)
			idWord[id] = w
		}
	}
	if len(ids) == 0 {
		return 0, missing, nil, nil
	}
	defs, err := d.Store.SortedDefinitionsOfWords(ctx, ids)
	if err != nil {
		return 0, nil, nil, err
	}
	byWord := map[store.ObjectID][]store.Definition{}
	defIDs := make([]store.ObjectID, 0, len(defs))
	for _, df := range defs {
		byWord[df.WordID] = append(byWord[df.WordID], df)
		defIDs = append(defIDs, df.ID)
	}
	for _, id := range ids {
		if len(byWord[id]) == 0 {
			missing = append(missing, idWord[id].Word+" (no definitions)")
		}
	}
	inflight, inflightIDs, err := d.inFlight(ctx, defIDs, job)
	if err != nil {
		return 0, nil, nil, err
	}
	cp, err := d.planChunk(ctx, job, ids, idWord, byWord, inflight)
	if err != nil {
		return 0, nil, nil, err
	}
	var reqs []store.NewRequest
	var ierrs []store.InputError
	for _, id := range ids {
		w := idWord[id]
		planned, err := cp.of(id)
		if err != nil {
			ierrs = append(ierrs, store.InputError{Line: w.Line, Word: w.Word, Message: err.Error()})
			continue
		}
		for _, p := range planned {
			defIDs := make([]store.ObjectID, len(p.Target.Defs))
			for i, df := range p.Target.Defs {
				defIDs[i] = df.ID
			}
			r := store.NewRequest{
				ID: p.ID, JobID: job.ID, Kind: p.Target.Kind, WordID: id, Word: w.Word, DefinitionIDs: defIDs,
				Components: p.Target.Components, Mode: job.Mode, PromptVersion: synthesis.PromptVersion,
				Model: p.Model, Force: job.Force, Body: p.Rendered.Body, BodyHash: p.Rendered.Hash,
				InputTokensEst: p.Rendered.InputTokens, OutputTokensEst: p.Rendered.OutputTokens,
			}
			// A body the result cache has answered is created settled with that answer (see cache.go).
			if hit, ok := cp.hits[p.Rendered.Hash]; ok && hit.id != p.ID {
				r.CachedFrom, r.Result = hit.id, hit.result
				cp.cached = append(cp.cached, p.ID)
			}
			reqs = append(reqs, r)
		}
	}
	existing, err := d.Store.InsertRequests(ctx, reqs, now)
	if err != nil {
		return 0, nil, nil, err
	}
	// Pieces already requested (by another job, or by an earlier run of this one): this job follows them
	// instead of paying again.
	if err := d.Store.FollowRequests(ctx, job.ID, append(inflightIDs, existing...)); err != nil {
		return 0, nil, nil, err
	}
	if err := d.settleChunk(ctx, job, cp); err != nil {
		return 0, nil, nil, err
	}
	return len(defs), missing, ierrs, nil
}

// addWordIDs adds the ids of found to wordIDs, keeping the ids wordIDs already has.
func addWordIDs(wordIDs, found map[store.WordRef]store.ObjectID) {
	for k, id := range found {
		if _, ok := wordIDs[k]; !ok {
			wordIDs[k] = id
		}
	}
}

// inFlight finds unsettled requests of other jobs on these definitions, by definition and component.
func (d *Deps) inFlight(ctx context.Context, defIDs []store.ObjectID, job *store.Job) (map[store.ObjectID]map[string]bool, []string, error) {
	out := map[store.ObjectID]map[string]bool{}
	rs, err := d.Store.InFlightOnDefinitions(ctx, defIDs, job.ID, synthesis.Models(job.Model, job.Components))
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
		for _, id := range r.DefinitionIDs {
			if out[id] == nil {
				out[id] = map[string]bool{}
			}
			for _, c := range r.Components {
				out[id][c] = true
			}
		}
	}
	return out, ids, nil
}
