package pipeline

import (
	"context"
	"fmt"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// Pay once: a request whose rendered body (same model, prompt and word text: the body hash) already has a
// succeeded answer is not sent again. It is created directly as succeeded with that answer (cached_from names
// the request that paid for it, usage and cost are zero) and applied at once through the same
// Decode -> Writes -> writeFloridify path as a batch result. Typical hits: the same sense text under two
// providers, a re-run after a failure, a word submitted by two jobs. --no-cache turns it off, and --force
// implies it: forcing means asking again.

// chunkPlan is what expandChunk creates for one chunk of a job: the planned requests of each word, and the
// answers the result cache holds for them.
type chunkPlan struct {
	words  map[store.ObjectID]wordPlan
	hits   map[string]cacheHit // body hash -> a succeeded request with that body
	cached []string            // ids of requests created as cached
	models map[string]bool     // models the chunk's requests go to
}

type wordPlan struct {
	planned []synthesis.Planned
	err     error
}

type cacheHit struct {
	id     string
	result string
}

// planChunk plans every word of a chunk: it loads the word-level state of the chunk's words (one query per
// collection), plans each word with synthesis.Plan and looks all bodies up in the result cache (one query,
// on the body_hash index).
func (d *Deps) planChunk(ctx context.Context, job *store.Job, ids []store.ObjectID, idWord map[store.ObjectID]store.InputWord,
	byWord map[store.ObjectID][]store.Definition, inflight map[store.ObjectID]map[string]bool) (*chunkPlan, error) {
	states, err := LoadWordStates(ctx, d.Store, ids, job.Components)
	if err != nil {
		return nil, err
	}
	cp := &chunkPlan{words: map[store.ObjectID]wordPlan{}, hits: map[string]cacheHit{}, models: map[string]bool{}}
	var hashes []string
	for _, id := range ids {
		w := idWord[id]
		planned, err := synthesis.Plan(synthesis.WordInput{WordID: id, Word: w.Word, Language: langOf(w), Defs: byWord[id], State: states[id]},
			synthesis.PlanOptions{Mode: job.Mode, Model: job.Model, Components: job.Components, Force: job.Force, Nonce: job.ID, InFlight: inflight})
		cp.words[id] = wordPlan{planned, err}
		for _, p := range planned {
			hashes = append(hashes, p.Rendered.Hash)
			cp.models[p.Model] = true
		}
	}
	if job.NoCache || job.Force || len(hashes) == 0 {
		return cp, nil
	}
	found, err := d.Store.CachedAnswers(ctx, hashes, synthesis.PromptVersion)
	if err != nil {
		return nil, err
	}
	for _, r := range found {
		if r.Result != "" {
			cp.hits[r.BodyHash] = cacheHit{id: r.ID, result: r.Result}
		}
	}
	return cp, nil
}

// of returns the planned requests of a word, or why it could not be planned.
func (cp *chunkPlan) of(wordID store.ObjectID) ([]synthesis.Planned, error) {
	wp := cp.words[wordID]
	return wp.planned, wp.err
}

// settleChunk runs once the chunk's requests are written: it applies the requests created from the cache,
// and wakes the builders of models other than the job's (with routing, a job's requests go to several).
func (d *Deps) settleChunk(ctx context.Context, job *store.Job, cp *chunkPlan) error {
	if err := d.applyCached(ctx, cp.cached); err != nil {
		return err
	}
	for m := range cp.models {
		if m != job.Model {
			if err := d.triggerBuild(m, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyCached applies cached requests not yet applied. It reads them back rather than trusting the chunk's
// plan, so a re-run after a crash applies what the first run left, and a request that already existed (and
// so was not created from the cache) is left to its own batch.
func (d *Deps) applyCached(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	reqs, err := d.Store.UnappliedCached(ctx, ids)
	if err != nil {
		return err
	}
	now := d.now()
	w := synthesis.NewWrites(now)
	var applied []string
	for i := range reqs {
		r := &reqs[i]
		p, err := synthesis.Decode(r.Kind, r.Word, len(r.DefinitionIDs), r.Components, r.Result)
		if err == nil {
			err = w.Add(applyInput(r), p)
		}
		if err != nil {
			// The stored answer no longer passes today's rules: send the request after all.
			if _, uerr := d.Store.RejectCachedAnswer(ctx, r.ID, "cached answer of "+r.CachedFrom+" rejected: "+err.Error(), now); uerr != nil {
				return uerr
			}
			d.log().Warn("cached answer rejected; request will be sent", "request_id", r.ID, "cached_from", r.CachedFrom, "error", err)
			continue
		}
		applied = append(applied, r.ID)
	}
	if err := d.writeFloridify(ctx, w); err != nil {
		return err
	}
	if len(applied) > 0 {
		if _, err := d.Store.MarkApplied(ctx, applied, now); err != nil {
			return fmt.Errorf("cached requests: %w", err)
		}
		d.log().Debug("requests served from the result cache", "requests", len(applied))
	}
	return nil
}
