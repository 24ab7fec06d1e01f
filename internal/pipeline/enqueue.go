package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": store.JobSubmitted},
		bson.M{"$set": bson.M{"status": store.JobExpanding, "updated_at": d.now()}}); err != nil {
		return fmt.Errorf("error starting job %s: %w", jobID, err)
	}
	for seq := 0; seq < job.Chunks; seq++ {
		if slices.Contains(job.Expanded, seq) {
			continue
		}
		var in store.JobInput
		if err := d.Store.Inputs.FindOne(ctx, bson.M{"_id": fmt.Sprintf("%s:%d", jobID, seq)}).Decode(&in); err != nil {
			return fmt.Errorf("error loading input chunk %d of job %s: %w", seq, jobID, err)
		}
		n, missing, ierrs, err := d.expandChunk(ctx, job, in.Words)
		if err != nil {
			return fmt.Errorf("job %s chunk %d: %w", jobID, seq, err)
		}
		upd := bson.M{
			"$addToSet": bson.M{"expanded": seq},
			"$inc":      bson.M{"definitions": n},
			"$set":      bson.M{"updated_at": d.now()},
		}
		push := bson.M{}
		if len(missing) > 0 {
			push["words_missing"] = bson.M{"$each": missing}
		}
		if len(ierrs) > 0 {
			push["input_errors"] = bson.M{"$each": ierrs}
		}
		if len(push) > 0 {
			upd["$push"] = push
		}
		// The filter makes the $inc and $push happen once per chunk even if two runs race.
		if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": jobID, "expanded": bson.M{"$ne": seq}}, upd); err != nil {
			return fmt.Errorf("error recording chunk %d of job %s: %w", seq, jobID, err)
		}
		d.log().Debug("job chunk expanded", "job_id", jobID, "chunk", seq, "definitions", n)
	}
	now := d.now()
	if _, err := d.Store.Jobs.UpdateOne(ctx, bson.M{"_id": jobID, "status": store.JobExpanding},
		bson.M{"$set": bson.M{"status": store.JobRunning, "expanded_at": now, "updated_at": now}}); err != nil {
		return fmt.Errorf("error finishing expansion of job %s: %w", jobID, err)
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

func langOf(w store.InputWord) string {
	if w.Language == "" {
		return "en"
	}
	return w.Language
}

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
	wordIDs := map[string]bson.ObjectID{} // lang\x00text -> id
	if len(inline) > 0 {
		if err := d.upsertInline(ctx, inline, wordIDs, now); err != nil {
			return 0, nil, nil, err
		}
	}
	var missing []string
	if len(named) > 0 {
		texts := make([]string, 0, len(named))
		for _, w := range named {
			texts = append(texts, w.Word)
		}
		cur, err := d.Store.Words.Find(ctx, bson.M{"text": bson.M{"$in": texts}}, options.Find().SetProjection(bson.M{"text": 1, "languages": 1}))
		if err != nil {
			return 0, nil, nil, fmt.Errorf("error looking up words: %w", err)
		}
		var found []store.Word
		if err := cur.All(ctx, &found); err != nil {
			return 0, nil, nil, fmt.Errorf("error looking up words: %w", err)
		}
		for _, f := range found {
			langs := f.Languages
			if len(langs) == 0 {
				langs = []string{"en"}
			}
			for _, l := range langs {
				k := l + "\x00" + f.Text
				if _, ok := wordIDs[k]; !ok {
					wordIDs[k] = f.ID
				}
			}
		}
		for _, w := range named {
			if _, ok := wordIDs[langOf(w)+"\x00"+w.Word]; !ok {
				missing = append(missing, w.Word)
			}
		}
	}
	// Load every definition of the chunk's words (Floridify's, not only the submitted ones: a plain-text
	// submission means "this word's definitions").
	ids := make([]bson.ObjectID, 0, len(wordIDs))
	idWord := map[bson.ObjectID]store.InputWord{}
	for _, w := range words {
		id, ok := wordIDs[langOf(w)+"\x00"+w.Word]
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
	cur, err := d.Store.Definitions.Find(ctx, bson.M{"word_id": bson.M{"$in": ids}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("error loading definitions: %w", err)
	}
	var defs []store.Definition
	if err := cur.All(ctx, &defs); err != nil {
		return 0, nil, nil, fmt.Errorf("error loading definitions: %w", err)
	}
	byWord := map[bson.ObjectID][]store.Definition{}
	defIDs := make([]bson.ObjectID, 0, len(defs))
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
	var models []mongo.WriteModel
	var bodies []store.RequestBody
	var reqIDs []string
	var ierrs []store.InputError
	for _, id := range ids {
		w := idWord[id]
		planned, err := cp.of(id)
		if err != nil {
			ierrs = append(ierrs, store.InputError{Line: w.Line, Word: w.Word, Message: err.Error()})
			continue
		}
		for _, p := range planned {
			defIDs := make([]bson.ObjectID, len(p.Target.Defs))
			for i, df := range p.Target.Defs {
				defIDs[i] = df.ID
			}
			doc := bson.M{
				"kind": p.Target.Kind, "word_id": id, "word": w.Word, "definition_ids": defIDs,
				"components": p.Target.Components, "mode": job.Mode, "prompt_version": synthesis.PromptVersion,
				"model": p.Model, "force": job.Force, "state": store.StatePending, "attempts": 0,
				"body_hash": p.Rendered.Hash, "body_bytes": len(p.Rendered.Body),
				"input_tokens_est": p.Rendered.InputTokens, "output_tokens_est": p.Rendered.OutputTokens,
				"usage": store.Usage{}, "cost_usd": 0.0, "applied": false,
				"created_at": now, "updated_at": now,
			}
			cp.markCached(p, doc, now)
			doc["_id"], doc["job_ids"] = p.ID, []string{job.ID}
			models = append(models, mongo.NewInsertOneModel().SetDocument(doc))
			bodies = append(bodies, store.RequestBody{ID: p.ID, Body: string(p.Rendered.Body)})
			reqIDs = append(reqIDs, p.ID)
		}
	}
	// Bodies first, so that no request is ever without its body.
	if err := d.Store.InsertBodies(ctx, bodies); err != nil {
		return 0, nil, nil, err
	}
	// Insert-if-absent: the deterministic _id refuses a piece that is already requested. One insert command
	// for the chunk, then one update for the pieces that existed, is far cheaper than an upsert per request.
	follow := inflightIDs
	if len(models) > 0 {
		if err := d.Store.BulkWrite(ctx, d.Store.Requests, models, false); err != nil {
			dups, ok := store.DuplicateIndexes(err)
			if !ok {
				return 0, nil, nil, fmt.Errorf("error writing requests: %w", err)
			}
			for _, i := range dups {
				follow = append(follow, reqIDs[i])
			}
		}
	}
	if len(follow) > 0 {
		// Pieces already requested (by another job, or by an earlier run of this one): this job follows them
		// instead of paying again.
		if _, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"_id": bson.M{"$in": follow}},
			bson.M{"$addToSet": bson.M{"job_ids": job.ID}}); err != nil {
			return 0, nil, nil, fmt.Errorf("error linking requests to job: %w", err)
		}
	}
	if err := d.settleChunk(ctx, job, cp); err != nil {
		return 0, nil, nil, err
	}
	return len(defs), missing, ierrs, nil
}

// inFlight finds unsettled requests of other jobs on these definitions, by definition and component.
func (d *Deps) inFlight(ctx context.Context, defIDs []bson.ObjectID, job *store.Job) (map[bson.ObjectID]map[string]bool, []string, error) {
	out := map[bson.ObjectID]map[string]bool{}
	if len(defIDs) == 0 {
		return out, nil, nil
	}
	cur, err := d.Store.Requests.Find(ctx, bson.M{
		"definition_ids": bson.M{"$in": defIDs},
		"state":          bson.M{"$in": bson.A{store.StatePending, store.StateClaimed, store.StateSubmitted}},
		"job_ids":        bson.M{"$ne": job.ID},
		"model":          bson.M{"$in": synthesis.Models(job.Model, job.Components)},
	}, options.Find().SetProjection(bson.M{"definition_ids": 1, "components": 1}))
	if err != nil {
		return nil, nil, fmt.Errorf("error finding requests in flight: %w", err)
	}
	var rs []store.Request
	if err := cur.All(ctx, &rs); err != nil {
		return nil, nil, fmt.Errorf("error finding requests in flight: %w", err)
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

// upsertInline writes submitted words, their definitions and their synthesis dictionary entries the way
// Floridify stores them. Deterministic _ids make concurrent runs converge on the same documents.
func (d *Deps) upsertInline(ctx context.Context, words []store.InputWord, wordIDs map[string]bson.ObjectID, t time.Time) error {
	// Existing Floridify words keep their ids.
	texts := make([]string, 0, len(words))
	for _, w := range words {
		texts = append(texts, w.Word)
	}
	cur, err := d.Store.Words.Find(ctx, bson.M{"text": bson.M{"$in": texts}}, options.Find().SetProjection(bson.M{"text": 1, "languages": 1}))
	if err != nil {
		return fmt.Errorf("error looking up words: %w", err)
	}
	var found []store.Word
	if err := cur.All(ctx, &found); err != nil {
		return fmt.Errorf("error looking up words: %w", err)
	}
	for _, f := range found {
		langs := f.Languages
		if len(langs) == 0 {
			langs = []string{"en"}
		}
		for _, l := range langs {
			if _, ok := wordIDs[l+"\x00"+f.Text]; !ok {
				wordIDs[l+"\x00"+f.Text] = f.ID
			}
		}
	}
	type entryLink struct {
		id   bson.ObjectID
		defs []bson.ObjectID
	}
	var wm, dm, em []mongo.WriteModel
	var entryDefs []entryLink
	for _, w := range words {
		lang := langOf(w)
		k := lang + "\x00" + w.Word
		id, ok := wordIDs[k]
		if !ok {
			id = store.WordID(lang, w.Word)
			wordIDs[k] = id
			wm = append(wm, mongo.NewInsertOneModel().SetDocument(store.Word{ID: id, Text: w.Word, Normalized: normalize(w.Word),
				Lemma: normalize(w.Word), Languages: []string{lang}, CorpusIDs: []bson.ObjectID{}, CreatedAt: t, UpdatedAt: t, Version: 1}))
		}
		entryID := store.EntryID(id)
		var defIDs []bson.ObjectID
		for _, df := range w.Definitions {
			did := store.DefinitionID(id, df.PartOfSpeech, df.Text)
			defIDs = append(defIDs, did)
			dm = append(dm, mongo.NewInsertOneModel().SetDocument(newDefinition(did, id, entryID, df, t)))
		}
		em = append(em, mongo.NewInsertOneModel().SetDocument(bson.M{"_id": entryID, "word_id": id, "provider": store.ProviderSynthesis,
			"languages": []string{lang}, "definition_ids": defIDs, "pronunciation_id": nil, "fact_ids": []bson.ObjectID{},
			"image_ids": []bson.ObjectID{}, "etymology": nil, "phrases": bson.A{}, "source_entries": bson.A{},
			"created_at": t, "updated_at": t, "version": 1}))
		entryDefs = append(entryDefs, entryLink{entryID, defIDs})
	}
	// Insert-if-absent with deterministic ids: one insert command per collection; a duplicate key means the
	// document is already there (an earlier run, or Floridify's own).
	for _, step := range []struct {
		c  *mongo.Collection
		ms []mongo.WriteModel
	}{{d.Store.Words, wm}, {d.Store.Definitions, dm}} {
		if len(step.ms) == 0 {
			continue
		}
		if err := d.Store.BulkWrite(ctx, step.c, step.ms, false); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("error inserting %s: %w", step.c.Name(), err)
		}
	}
	if len(em) == 0 {
		return nil
	}
	err = d.Store.BulkWrite(ctx, d.Store.Entries, em, false)
	if err == nil {
		return nil
	}
	dups, ok := store.DuplicateIndexes(err)
	if !ok {
		return fmt.Errorf("error inserting dictionary entries: %w", err)
	}
	// Existing synthesis entries gain the submitted definitions.
	var link []mongo.WriteModel
	for _, i := range dups {
		link = append(link, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": entryDefs[i].id}).SetUpdate(bson.M{
			"$addToSet": bson.M{"definition_ids": bson.M{"$each": entryDefs[i].defs}}, "$set": bson.M{"updated_at": t}}))
	}
	if err := d.Store.BulkWrite(ctx, d.Store.Entries, link, false); err != nil {
		return fmt.Errorf("error linking definitions to entries: %w", err)
	}
	return nil
}

// onlyDuplicates reports a bulk error made only of duplicate-key errors: two runs raced to insert the same
// deterministic _id, and the document is there either way.
func onlyDuplicates(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !onlyDuplicates(e) {
				return false
			}
		}
		return true
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

func normalize(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func newDefinition(id, wordID, entryID bson.ObjectID, df store.InputDefinition, t time.Time) bson.M {
	return bson.M{
		"_id": id, "word_id": wordID, "part_of_speech": df.PartOfSpeech, "text": df.Text,
		"meaning_cluster": nil, "sense_number": nil, "word_forms": bson.A{}, "example_ids": bson.A{},
		"synonyms": bson.A{}, "antonyms": bson.A{}, "cognates": bson.A{}, "language_register": nil,
		"domain": nil, "region": nil, "usage_notes": bson.A{}, "grammar_patterns": bson.A{}, "collocations": bson.A{},
		"transitivity": nil, "cefr_level": nil, "frequency_band": nil, "frequency_score": nil, "image_ids": bson.A{},
		"dictionary_entry_id": entryID, "providers": bson.A{store.ProviderSynthesis}, "source_definitions": bson.A{},
		"model_info": nil, "created_at": t, "updated_at": t, "version": 1,
	}
}
