package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/openai/openai-go/v3"

	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/tasks"
)

// buildLease is how long a builder that stopped renewing (its process died) keeps a batch document from the
// others; a live builder renews it every buildLease/3 for as long as it works on the batch.
const buildLease = 30 * time.Second

// reconcileAfter is how long a batch whose create had an unknown outcome (timeout, 5xx, lost response) is
// left alone before a builder lists recent batches to find it: long enough for a create still in flight at
// OpenAI to land, so that the reconciliation sees it and does not create a second batch.
const reconcileAfter = 5 * time.Second

// errLeaseLost means another worker leased the batch document this builder was working on: the builder stops
// working on it rather than race the new owner.
var errLeaseLost = errors.New("batch document leased by another worker")

// lineOverhead bounds the bytes an input line adds around its body (custom_id, method, url).
const lineOverhead = 128

// Build packs pending requests of model into batches until none is left to send (or the model's enqueued
// token budget is used up), resuming any batch document a dead builder left half-way. With flush false, a
// batch smaller than the line limit waits until its oldest request is older than the flush delay.
func (d *Deps) Build(ctx context.Context, model string, flush bool) error {
	unlock := d.lockModel(ctx, model)
	if unlock == nil {
		// Another builder is draining this model; it takes what we were asked for too.
		return nil
	}
	defer unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := d.resumeOrStart(ctx, model, flush)
		if err != nil || b == nil {
			return err
		}
		stop := d.keepLease(ctx, b.ID, store.BuildStates, buildLease)
		err = d.advance(ctx, b)
		stop()
		if errors.Is(err, errLeaseLost) {
			// Its new owner finishes it, and the lease is not ours to hand back.
			continue
		}
		if err != nil {
			// Hand the batch back at once (after reconcileAfter for an unknown create) so that the task's retry,
			// or any builder, resumes it instead of waiting for the lease to run out.
			after := time.Duration(0)
			if b.State == store.BatchCreating {
				after = reconcileAfter
			}
			d.releaseLease(b.ID, after)
			return err
		}
	}
}

// keepLease renews the lease of batch document id (while it is ours and in one of states) every lease/3
// until stop is called. A dead process stops renewing, so another worker may take the batch over within
// lease. The returned stop ends the renewing and waits for it.
func (d *Deps) keepLease(ctx context.Context, id string, states []store.BatchState, lease time.Duration) func() {
	return renewEvery(ctx, lease/3, func(rctx context.Context) bool {
		held, err := d.Store.RenewLease(rctx, id, d.owner(), states, d.now().Add(lease))
		return err != nil || held // nothing matched: moved on (by us) or taken over
	})
}

// releaseLease lets other workers take batch document id after the given delay, if we still hold it.
func (d *Deps) releaseLease(id string, after time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = d.Store.ReleaseLease(ctx, id, d.owner(), d.now().Add(after))
}

// resumeOrStart returns a batch document this builder now leases: an unfinished one first, else a new one
// with claimed requests; nil when there is nothing to do.
func (d *Deps) resumeOrStart(ctx context.Context, model string, flush bool) (*store.Batch, error) {
	now := d.now()
	leased, err := d.Store.LeaseForBuild(ctx, model, d.owner(), now, buildLease)
	if err != nil {
		return nil, err
	}
	if leased != nil {
		d.log().Info("resuming batch", "batch_id", leased.ID, "state", leased.State, "model", model)
		return leased, nil
	}
	if held, until, err := d.modelHeld(ctx, model); err != nil {
		return nil, err
	} else if held {
		d.log().Info("builds held for model", "model", model, "until", until)
		return nil, nil
	}
	budget, used := int64(-1), int64(0)
	if d.Config.TokenBudget > 0 {
		used, err = d.Store.EnqueuedTokens(ctx, model)
		if err != nil {
			return nil, err
		}
		budget = d.Config.TokenBudget - used
		if budget <= 0 {
			d.log().Info("token budget in use; waiting for batches to finish", "model", model, "in_use", used)
			return nil, nil
		}
	}
	// Candidates: the oldest pending requests of this model.
	cands, err := d.Store.BuildCandidates(ctx, model, d.Config.MaxLines)
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return nil, nil
	}
	if !flush && len(cands) < d.Config.MaxLines && now.Sub(cands[0].CreatedAt) < d.Config.FlushDelay {
		return nil, nil
	}
	split := openaibatch.Splitter{MaxLines: d.Config.MaxLines, MaxBytes: d.Config.MaxFileBytes}
	var ids []string
	var tokens int64
	for _, c := range cands {
		// A request bigger than what is left of the budget waits, unless nothing is enqueued: then it goes
		// alone, or a request bigger than the whole budget would never be sent.
		if budget >= 0 && tokens+c.InputTokensEst > budget && (len(ids) > 0 || used > 0) {
			break
		}
		if !split.Fits(c.BodyBytes + lineOverhead) {
			break
		}
		ids = append(ids, c.ID)
		tokens += c.InputTokensEst
	}
	if len(ids) == 0 {
		d.log().Info("token budget too low for the next request; waiting for batches to finish", "model", model, "in_use", used)
		return nil, nil
	}
	b := store.Batch{
		ID: NewID("sb"), Model: model, State: store.BatchClaiming, StatusHistory: []store.StatusChange{},
		LeaseOwner: d.owner(), LeaseUntil: now.Add(buildLease), CreatedAt: now, UpdatedAt: now,
	}
	// Record the batch first, then claim: a request never names a batch that does not exist, so the sweep
	// (which releases requests claimed by a missing or abandoned batch) cannot release requests while their
	// claim is still being written and have them sent twice. If this builder dies after the insert, the
	// lease runs out and the next builder resumes the document in state claiming. The claim is a
	// compare-and-set on state.
	if err := d.Store.InsertBatch(ctx, &b); err != nil {
		return nil, err
	}
	n, err := d.Store.ClaimPendingIntoBatch(ctx, b.ID, ids, now)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		// Another builder took every candidate: no request names this document, so it can go.
		return nil, d.Store.DeleteEmptyBatch(ctx, b.ID)
	}
	// The claim's own count is authoritative; counting again right away could read a stale snapshot on
	// FerretDB (SQLite WAL), and a batch must not be abandoned for a miscount.
	est := int64(0)
	if n == len(ids) {
		est = tokens // else some candidates went to another claim and which ones is unknown here: 0, as before
	}
	ok, err := d.Store.RecordClaimed(ctx, b.ID, n, est, d.now())
	err = d.moved(ctx, &b, store.BatchUploading, ok, err)
	if errors.Is(err, errLeaseLost) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if b.State != store.BatchUploading {
		return nil, nil // moved by someone else (a cancel): reload has the document as it is
	}
	b.RequestCount, b.InputTokensEst = n, est
	return &b, nil
}

// advance moves one leased batch document through its states until it is submitted or abandoned. It
// returns errLeaseLost once another worker holds the document.
func (d *Deps) advance(ctx context.Context, b *store.Batch) error {
	log := d.log().With("batch_id", b.ID, "model", b.Model)
	for {
		switch b.State {
		case store.BatchClaiming:
			n, tokens, err := d.Store.ClaimedTotals(ctx, b.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				ok, err := d.Store.AbandonBatch(ctx, b.ID, store.BatchClaiming, store.BatchError{Code: "nothing_claimed", Message: "no pending request left to claim"}, d.now())
				return d.moved(ctx, b, store.BatchAbandoned, ok, err)
			}
			ok, err := d.Store.RecordClaimed(ctx, b.ID, n, tokens, d.now())
			if err := d.moved(ctx, b, store.BatchUploading, ok, err); err != nil {
				return err
			}
			b.RequestCount, b.InputTokensEst = n, tokens
		case store.BatchUploading:
			fileID, size, err := d.upload(ctx, b)
			if err != nil {
				return err
			}
			ok, err := d.Store.RecordUploaded(ctx, b.ID, fileID, size, d.now())
			if err := d.moved(ctx, b, store.BatchUploaded, ok, err); err != nil {
				return err
			}
			b.InputFileID = fileID
			log.Info("input file uploaded", "file_id", fileID, "bytes", size, "requests", b.RequestCount)
		case store.BatchUploaded:
			ok, err := d.Store.MarkCreating(ctx, b.ID, d.now())
			if err != nil {
				return err
			}
			if !ok {
				return d.reload(ctx, b)
			}
			b.State = store.BatchCreating
			b.CreateAttempts++
			if err := d.create(ctx, b, false); err != nil {
				return err
			}
		case store.BatchCreating:
			// A previous create's outcome is unknown: find ours by metadata before creating again.
			if err := d.create(ctx, b, true); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// reload reads b again after a compare-and-set found it moved by someone else. It returns errLeaseLost when
// another worker owns it now.
func (d *Deps) reload(ctx context.Context, b *store.Batch) error {
	nb, err := d.Store.Batch(ctx, b.ID)
	if err != nil {
		return err
	}
	*b = *nb
	if b.LeaseOwner != d.owner() {
		// Someone else owns it now; stop here rather than race them.
		return errLeaseLost
	}
	return nil
}

// moved follows a compare-and-set move of b to state to, whose outcome is ok and err: b is now in to, or, if
// something else moved the document first, b is reloaded as it is.
func (d *Deps) moved(ctx context.Context, b *store.Batch, to store.BatchState, ok bool, err error) error {
	if err != nil {
		return err
	}
	if !ok {
		return d.reload(ctx, b)
	}
	b.State = to
	return nil
}

// upload renders the claimed requests into a JSONL file (streamed through a temp file, so memory stays flat
// whatever the size) and uploads it. An upload whose id was never recorded is found by name and reused.
func (d *Deps) upload(ctx context.Context, b *store.Batch) (string, int64, error) {
	name := b.ID + ".jsonl"
	attempts, err := d.Store.CountUploadAttempt(ctx, b.ID)
	if err != nil {
		return "", 0, err
	}
	if attempts > 1 {
		// An earlier attempt may have uploaded the file and died before recording its id.
		if id, ok, err := d.OpenAI.FindFile(ctx, name); err == nil && ok {
			return id, 0, nil
		}
	}
	f, err := os.CreateTemp("", "batchsynth-*.jsonl")
	if err != nil {
		return "", 0, fmt.Errorf("error creating temp file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, lines, err := d.RenderBatch(ctx, b.ID, f)
	if err != nil {
		return "", 0, err
	}
	if lines == 0 || (b.RequestCount > 0 && lines != b.RequestCount) {
		// A partial file would send some claimed requests nowhere; try again rather than upload it.
		return "", 0, fmt.Errorf("batch %s: rendered %d of %d claimed requests", b.ID, lines, b.RequestCount)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return "", 0, err
	}
	id, err := d.OpenAI.Upload(ctx, name, f)
	if err != nil {
		return "", 0, err
	}
	return id, size, nil
}

// RenderBatch writes the JSONL input of a batch's claimed requests to w and returns its size and lines. It
// reads the requests a page at a time, and each page's bodies in one query.
func (d *Deps) RenderBatch(ctx context.Context, batchID string, w io.Writer) (int64, int, error) {
	const page = 2000
	bw := bufio.NewWriterSize(w, 1<<20)
	var size int64
	var lines int
	var line []byte
	ids := make([]string, 0, page)
	err := d.Store.EachClaimedPage(ctx, batchID, page, func(rs []store.ClaimedRequest) error {
		ids = ids[:0]
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		bodies, err := d.Store.BodiesOf(ctx, ids)
		if err != nil {
			return err
		}
		for _, r := range rs {
			line = openaibatch.AppendLine(line[:0], synthesis.CustomID(r.ID, r.Attempts), []byte(bodies[r.ID]))
			n, err := bw.Write(line)
			if err != nil {
				return fmt.Errorf("error writing input file: %w", err)
			}
			size += int64(n)
			lines++
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return size, lines, bw.Flush()
}

// create creates the OpenAI batch for b (already in state creating). With reconcile, it first looks for a
// batch a previous attempt created but never recorded.
func (d *Deps) create(ctx context.Context, b *store.Batch, reconcile bool) error {
	log := d.log().With("batch_id", b.ID, "model", b.Model)
	if reconcile {
		ob, err := d.OpenAI.FindByMetadata(ctx, b.ID, b.CreatedAt)
		if err != nil {
			return err
		}
		if ob != nil {
			log.Info("found batch created by an earlier attempt", "openai_batch_id", ob.ID)
			return d.recordCreated(ctx, b, ob)
		}
		if err := d.Store.CountCreateAttempt(ctx, b.ID, d.now()); err != nil {
			return err
		}
	}
	ob, err := d.OpenAI.Create(ctx, b.InputFileID, b.ID, b.Model)
	if err == nil {
		log.Info("batch created", "openai_batch_id", ob.ID, "requests", b.RequestCount)
		return d.recordCreated(ctx, b, ob)
	}
	if openaibatch.IsFileNotReady(err) {
		// A fresh upload can be briefly invisible. Nothing was created: back to uploaded, so that the retry
		// creates at once instead of waiting to reconcile an unknown outcome.
		ok, merr := d.Store.RevertToUploaded(ctx, b.ID, d.now())
		if err := d.moved(ctx, b, store.BatchUploaded, ok, merr); err != nil {
			return err
		}
		return fmt.Errorf("input file of %s not visible yet: %w", b.ID, err)
	}
	if openaibatch.IsRejected(err) {
		log.Warn("batch creation rejected; releasing its requests", "error", err)
		ok, merr := d.Store.AbandonBatch(ctx, b.ID, store.BatchCreating, store.BatchError{Code: "create_rejected", Message: err.Error()}, d.now())
		if err := d.moved(ctx, b, store.BatchAbandoned, ok, merr); err != nil {
			return err
		}
		_, err := d.settleLeftovers(ctx, b, "batch creation rejected: "+err.Error(), true)
		return err
	}
	// Unknown outcome (timeout, 5xx, lost response): stay in creating; the retry reconciles first.
	return fmt.Errorf("creating batch %s (outcome unknown, will reconcile): %w", b.ID, err)
}

func (d *Deps) recordCreated(ctx context.Context, b *store.Batch, ob *openai.Batch) error {
	now := d.now()
	ok, err := d.Store.RecordCreated(ctx, b.ID, ob.ID, string(ob.Status), now)
	if err := d.moved(ctx, b, store.BatchSubmitted, ok, err); err != nil {
		return err
	}
	if _, err := d.Store.SubmitClaimed(ctx, b.ID, now); err != nil {
		return err
	}
	_ = d.Store.ExpireLease(ctx, b.ID, now)
	t, err := tasks.NewPollBatchTask(b.ID, d.Config.PollInterval)
	if err != nil {
		return err
	}
	// The scheduler polls every in-flight batch; this first poll only saves waiting for its next sync.
	return tasks.Enqueue(d.Queue, t, asynq.ProcessIn(min(d.Config.PollInterval, 2*time.Second)))
}

// modelHeld reports a hold set after OpenAI answered token_limit_exceeded for this model.
func (d *Deps) modelHeld(ctx context.Context, model string) (bool, time.Time, error) {
	until, err := d.Store.ModelHoldUntil(ctx, model)
	if err != nil {
		return false, time.Time{}, err
	}
	return until.After(d.now()), until, nil
}

// HoldModel stops builds for model until t.
func (d *Deps) HoldModel(ctx context.Context, model string, until time.Time, reason string) error {
	return d.Store.HoldModelBuilds(ctx, model, until, reason, d.now())
}
