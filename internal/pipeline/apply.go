package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// ApplyChunk is how many result lines are settled per round of bulk writes: about six round trips a chunk on
// MongoDB (load the requests, settle them, write definitions, insert examples, mark applied), each one bulk
// command up to store.MaxBulkDefault statements, so about 1.2 per 1,000 applied requests. A chunk's answers
// take about 10 MB in memory.
const ApplyChunk = 5000

// applyLease bounds how long an applier that stopped renewing (its process died) keeps a batch from the
// others; a live applier renews it every applyLease/3 until it is done.
const applyLease = 30 * time.Second

// ErrBusy means another worker is applying the batch right now; the task retries later.
var ErrBusy = errors.New("batch is being applied by another worker")

// tokenLimitHold is how long builds of a model wait after OpenAI refused a batch for its enqueued tokens: two
// poll intervals (the budget frees as in-flight batches finish, which polls see), within 1 s .. 5 min.
func (d *Deps) tokenLimitHold() time.Duration {
	return min(max(2*d.Config.PollInterval, time.Second), 5*time.Minute)
}

// Apply streams a terminal batch's output and error files, validates every line, writes results to
// Floridify's collections and settles every request of the batch: succeeded, back to pending, or dead.
func (d *Deps) Apply(ctx context.Context, batchID string) error {
	b, err := d.Store.Batch(ctx, batchID)
	if err != nil {
		return err
	}
	if b.State != store.BatchTerminal {
		return nil
	}
	now := d.now()
	leased, err := d.Store.LeaseTerminalBatch(ctx, b.ID, d.owner(), now, applyLease)
	if err != nil {
		return err
	}
	if !leased {
		return ErrBusy
	}
	stop := d.keepLease(ctx, b.ID, []store.BatchState{store.BatchTerminal}, applyLease)
	defer stop()
	if err := d.apply(ctx, b); err != nil {
		stop()
		// Release the lease so the retry need not wait it out.
		d.releaseLease(b.ID, 0)
		return err
	}
	return nil
}

// apply settles a leased terminal batch.
func (d *Deps) apply(ctx context.Context, b *store.Batch) error {
	log := d.log().With("batch_id", b.ID, "openai_batch_id", b.OpenAIBatchID, "status", b.OpenAIStatus)
	start := time.Now()
	var counts store.ApplyCounts
	for _, fileID := range []string{b.OutputFileID, b.ErrorFileID} {
		if fileID == "" {
			continue
		}
		if err := d.applyFile(ctx, b, fileID, &counts); err != nil {
			return err
		}
	}
	reason, countAttempt := leftoverReason(b)
	left, err := d.settleLeftovers(ctx, b, reason, countAttempt)
	if err != nil {
		return err
	}
	counts.Retried += left.Retried
	counts.Dead += left.Dead
	if !countAttempt && hasCode(b, "token_limit_exceeded") {
		if err := d.HoldModel(ctx, b.Model, d.now().Add(d.tokenLimitHold()), reason); err != nil {
			return err
		}
	}
	if _, err := d.Store.FinishApply(ctx, b.ID, counts, pricing.Batch(b.Model, b.Usage), pricing.Immediate(b.Model, b.Usage), d.now()); err != nil {
		return err
	}
	log.Info("batch applied", "succeeded", counts.Succeeded, "retried", counts.Retried, "dead", counts.Dead,
		"input_tokens", b.Usage.InputTokens, "output_tokens", b.Usage.OutputTokens, "duration", time.Since(start).Round(time.Millisecond))
	if counts.Retried > 0 {
		return d.triggerBuild(b.Model, true)
	}
	return nil
}

func hasCode(b *store.Batch, code string) bool {
	for _, e := range b.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// leftoverReason says why requests with no result line did not run, and whether that counts as an attempt
// (a batch refused for the enqueued-token limit is not the requests' fault).
func leftoverReason(b *store.Batch) (string, bool) {
	var parts []string
	for _, e := range b.Errors {
		parts = append(parts, e.Code+": "+e.Message)
	}
	detail := strings.Join(parts, "; ")
	switch b.OpenAIStatus {
	case "failed":
		if hasCode(b, "token_limit_exceeded") {
			return "batch failed: " + detail, false
		}
		return "batch failed: " + detail, true
	case "expired":
		return "batch expired before this request ran", true
	case "cancelled":
		return "batch cancelled before this request ran", true
	}
	return "no result line for this request in batch " + b.OpenAIStatus, true
}

func (d *Deps) applyFile(ctx context.Context, b *store.Batch, fileID string, counts *store.ApplyCounts) error {
	rc, err := d.OpenAI.Content(ctx, fileID)
	if err != nil {
		return err
	}
	defer rc.Close()
	// A chunk at a time, the next one read and parsed (on every core) while this one is settled and written
	// (applyChunk validates the answers on every core too). Memory stays flat whatever the file's size.
	for c, err := range openaibatch.NewReader(rc).Chunks(ApplyChunk) {
		if err != nil {
			return fmt.Errorf("file %s: %w", fileID, err)
		}
		chunk := c.Results[:0]
		for i, r := range c.Results {
			if c.Errs[i] != nil {
				// A malformed line cannot be joined to a request; that request is settled as a leftover.
				d.log().Warn("malformed result line", "batch_id", b.ID, "file_id", fileID, "line", c.Numbers[i], "error", c.Errs[i])
				continue
			}
			chunk = append(chunk, r)
		}
		if len(chunk) > 0 {
			if err := d.applyChunk(ctx, b, chunk, counts); err != nil {
				return err
			}
		}
	}
	return nil
}

type settled struct {
	req    *store.Request
	res    openaibatch.Result
	parsed *synthesis.Parsed
	reason string
}

// applyChunk settles one chunk of result lines with a handful of bulk writes:
// read requests, settle them (compare-and-set on batch, attempt and state), write Floridify documents, mark applied.
func (d *Deps) applyChunk(ctx context.Context, b *store.Batch, results []openaibatch.Result, counts *store.ApplyCounts) error {
	type lineRef struct {
		res     openaibatch.Result
		attempt int
	}
	byID := make(map[string]lineRef, len(results))
	ids := make([]string, 0, len(results))
	for _, r := range results {
		id, attempt, err := synthesis.ParseCustomID(r.CustomID)
		if err != nil {
			d.log().Warn("result line with a foreign custom_id", "batch_id", b.ID, "error", err)
			continue
		}
		if _, dup := byID[id]; dup {
			continue
		}
		byID[id] = lineRef{r, attempt}
		ids = append(ids, id)
	}
	reqs, err := d.Store.RequestsByIDs(ctx, ids)
	if err != nil {
		return err
	}
	now := d.now()
	var ok, bad, answered []settled
	var answers []synthesis.Answer
	var reapply []*store.Request
	for i := range reqs {
		r := &reqs[i]
		lr := byID[r.ID]
		if r.BatchID != b.ID || r.Attempts != lr.attempt {
			continue // a line of an older attempt: that attempt was settled already
		}
		switch r.State {
		case store.StateClaimed, store.StateSubmitted:
		case store.StateSucceeded:
			if !r.Applied {
				reapply = append(reapply, r)
			}
			continue
		default:
			continue
		}
		if !lr.res.OK {
			bad = append(bad, settled{req: r, res: lr.res, reason: lr.res.Reason})
			continue
		}
		answered = append(answered, settled{req: r, res: lr.res})
		answers = append(answers, synthesis.Answer{Kind: r.Kind, Word: r.Word, NDefs: len(r.DefinitionIDs), Components: r.Components, Content: lr.res.Content})
	}
	synthesis.DecodeAll(answers)
	for i, a := range answers {
		s := answered[i]
		if a.Err != nil {
			s.reason = "invalid answer: " + a.Err.Error()
			bad = append(bad, s)
			continue
		}
		s.parsed = a.Parsed
		ok = append(ok, s)
	}
	// 1. Settle the requests: compare-and-sets on (batch, attempt, unsettled state), so a second applier's
	// writes match nothing.
	settles := make([]store.AttemptSettle, 0, len(ok)+len(bad))
	for _, s := range ok {
		settles = append(settles, store.AttemptSettle{Request: s.req, To: store.StateSucceeded, Result: s.res.Content,
			Usage: s.res.Usage, CostUSD: pricing.Batch(b.Model, s.res.Usage)})
	}
	for _, s := range bad {
		to := store.StatePending
		if b.CancelAsked {
			// The user cancelled the batch: what did not succeed in it is cancelled, not sent again.
			to = store.StateCancelled
			counts.Dead++
		} else if s.req.Attempts >= d.Config.MaxAttempts {
			to = store.StateDead
			counts.Dead++
		} else {
			counts.Retried++
		}
		settles = append(settles, store.AttemptSettle{Request: s.req, To: to, Reason: s.reason,
			Usage: s.res.Usage, CostUSD: pricing.Batch(b.Model, s.res.Usage)})
	}
	if err := d.Store.SettleAttempts(ctx, b.ID, settles, now); err != nil {
		return err
	}
	counts.Succeeded += len(ok)
	// 2. Write Floridify documents for the successes (and for successes a dead applier settled but never wrote).
	w := synthesis.NewWrites(now)
	var applied []string
	for _, s := range ok {
		if err := w.Add(applyInput(s.req), s.parsed); err != nil {
			return err
		}
		applied = append(applied, s.req.ID)
	}
	for _, r := range reapply {
		p, err := synthesis.Decode(r.Kind, r.Word, len(r.DefinitionIDs), r.Components, r.Result)
		if err != nil {
			return fmt.Errorf("stored result of %s no longer decodes: %w", r.ID, err)
		}
		if err := w.Add(applyInput(r), p); err != nil {
			return err
		}
		applied = append(applied, r.ID)
	}
	if err := d.writeFloridify(ctx, w); err != nil {
		return err
	}
	// 3. Mark them applied.
	if _, err := d.Store.MarkApplied(ctx, applied, now); err != nil {
		return err
	}
	return nil
}

func applyInput(r *store.Request) synthesis.ApplyInput {
	return synthesis.ApplyInput{RequestID: r.ID, Model: r.Model, Force: r.Force, WordID: r.WordID, DefinitionIDs: r.DefinitionIDs}
}

// settleLeftovers settles the batch's requests that got no result line: back to pending (or dead after the
// last attempt), or cancelled when the user cancelled. countAttempt false gives the attempt back.
func (d *Deps) settleLeftovers(ctx context.Context, b *store.Batch, reason string, countAttempt bool) (store.ApplyCounts, error) {
	var c store.ApplyCounts
	now := d.now()
	if b.CancelAsked {
		n, err := d.Store.CancelLeftovers(ctx, b.ID, reason, now)
		if err != nil {
			return c, err
		}
		c.Dead += int(n)
		return c, nil
	}
	if countAttempt {
		n, err := d.Store.SettleDeadLeftovers(ctx, b.ID, d.Config.MaxAttempts, reason, now)
		if err != nil {
			return c, err
		}
		c.Dead = int(n)
	}
	n, err := d.Store.ReleaseLeftovers(ctx, b.ID, reason, !countAttempt, now)
	if err != nil {
		return c, err
	}
	c.Retried = int(n)
	return c, nil
}
