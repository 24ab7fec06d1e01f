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
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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

// buildStates are the states of a batch document that a builder is working on.
var buildStates = bson.A{store.BatchClaiming, store.BatchUploading, store.BatchUploaded, store.BatchCreating}

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
		res, err := d.Store.Batches.UpdateOne(rctx, bson.M{"_id": id, "lease_owner": d.owner(), "state": bson.M{"$in": states}},
			bson.M{"$set": bson.M{"lease_until": d.now().Add(lease)}})
		return err != nil || res.MatchedCount > 0 // nothing matched: moved on (by us) or taken over
	})
}

// releaseLease lets other workers take batch document id after the given delay, if we still hold it.
func (d *Deps) releaseLease(id string, after time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = d.Store.Batches.UpdateOne(ctx, bson.M{"_id": id, "lease_owner": d.owner()}, bson.M{"$set": bson.M{"lease_until": d.now().Add(after)}})
}

// resumeOrStart returns a batch document this builder now leases: an unfinished one first, else a new one
// with claimed requests; nil when there is nothing to do.
func (d *Deps) resumeOrStart(ctx context.Context, model string, flush bool) (*store.Batch, error) {
	now := d.now()
	var b store.Batch
	err := d.Store.Batches.FindOneAndUpdate(ctx,
		bson.M{"model": model, "state": bson.M{"$in": buildStates}, "lease_until": bson.M{"$lt": now}},
		bson.M{"$set": bson.M{"lease_owner": d.owner(), "lease_until": now.Add(buildLease)}},
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetSort(bson.D{{Key: "created_at", Value: 1}}),
	).Decode(&b)
	if err == nil {
		d.log().Info("resuming batch", "batch_id", b.ID, "state", b.State, "model", model)
		return &b, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("error looking for unfinished batches: %w", err)
	}
	if held, until, err := d.modelHeld(ctx, model); err != nil {
		return nil, err
	} else if held {
		d.log().Info("builds held for model", "model", model, "until", until)
		return nil, nil
	}
	budget, used := int64(-1), int64(0)
	if d.Config.TokenBudget > 0 {
		used, err = d.enqueuedTokens(ctx, model)
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
	cur, err := d.Store.Requests.Find(ctx, bson.M{"state": store.StatePending, "model": model},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).
			SetLimit(int64(d.Config.MaxLines)).
			SetProjection(bson.M{"_id": 1, "body_bytes": 1, "input_tokens_est": 1, "created_at": 1}))
	if err != nil {
		return nil, fmt.Errorf("error finding pending requests: %w", err)
	}
	var cands []store.Request
	if err := cur.All(ctx, &cands); err != nil {
		return nil, fmt.Errorf("error finding pending requests: %w", err)
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
	b = store.Batch{
		ID: NewID("sb"), Model: model, State: store.BatchClaiming, StatusHistory: []store.StatusChange{},
		LeaseOwner: d.owner(), LeaseUntil: now.Add(buildLease), CreatedAt: now, UpdatedAt: now,
	}
	// Record the batch first, then claim: a request never names a batch that does not exist, so the sweep
	// (which releases requests claimed by a missing or abandoned batch) cannot release requests while their
	// claim is still being written and have them sent twice. If this builder dies after the insert, the
	// lease runs out and the next builder resumes the document in state claiming. The claim is a
	// compare-and-set on state.
	if _, err := d.Store.Batches.InsertOne(ctx, b); err != nil {
		return nil, fmt.Errorf("error creating batch document: %w", err)
	}
	res, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"_id": bson.M{"$in": ids}, "state": store.StatePending},
		bson.M{"$set": bson.M{"state": store.StateClaimed, "batch_id": b.ID, "updated_at": now}, "$inc": bson.M{"attempts": 1}})
	if err != nil {
		return nil, fmt.Errorf("error claiming requests for %s: %w", b.ID, err)
	}
	if res.ModifiedCount == 0 {
		// Another builder took every candidate: no request names this document, so it can go.
		if _, err := d.Store.Batches.DeleteOne(ctx, bson.M{"_id": b.ID, "state": store.BatchClaiming}); err != nil {
			return nil, fmt.Errorf("error removing empty batch %s: %w", b.ID, err)
		}
		return nil, nil
	}
	// The claim's own count is authoritative; counting again right away could read a stale snapshot on
	// FerretDB (SQLite WAL), and a batch must not be abandoned for a miscount.
	n, est := int(res.ModifiedCount), int64(0)
	if n == len(ids) {
		est = tokens // else some candidates went to another claim and which ones is unknown here: 0, as before
	}
	if err := d.setBatch(ctx, &b, store.BatchClaiming, store.BatchUploading, bson.M{"request_count": n, "input_tokens_est": est}); err != nil {
		return nil, err
	}
	if b.State != store.BatchUploading {
		return nil, nil // moved by someone else (a cancel): reload has the document as it is
	}
	b.RequestCount, b.InputTokensEst = n, est
	return &b, nil
}

// advance moves one leased batch document through its states until it is submitted or abandoned.
func (d *Deps) advance(ctx context.Context, b *store.Batch) error {
	log := d.log().With("batch_id", b.ID, "model", b.Model)
	for {
		switch b.State {
		case store.BatchClaiming:
			n, tokens, err := d.claimedTotals(ctx, b.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return d.setBatch(ctx, b, store.BatchClaiming, store.BatchAbandoned, bson.M{"errors": []store.BatchError{{Code: "nothing_claimed", Message: "no pending request left to claim"}}})
			}
			if err := d.setBatch(ctx, b, store.BatchClaiming, store.BatchUploading, bson.M{"request_count": n, "input_tokens_est": tokens}); err != nil {
				return err
			}
			b.RequestCount, b.InputTokensEst = n, tokens
		case store.BatchUploading:
			fileID, size, err := d.upload(ctx, b)
			if err != nil {
				return err
			}
			if err := d.setBatch(ctx, b, store.BatchUploading, store.BatchUploaded, bson.M{"input_file_id": fileID, "bytes": size}); err != nil {
				return err
			}
			b.InputFileID = fileID
			log.Info("input file uploaded", "file_id", fileID, "bytes", size, "requests", b.RequestCount)
		case store.BatchUploaded:
			res, err := d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID, "state": store.BatchUploaded},
				bson.M{"$set": bson.M{"state": store.BatchCreating, "updated_at": d.now()}, "$inc": bson.M{"create_attempts": 1}})
			if err != nil {
				return fmt.Errorf("error marking %s creating: %w", b.ID, err)
			}
			if res.ModifiedCount == 0 {
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

func (d *Deps) reload(ctx context.Context, b *store.Batch) error {
	nb, err := d.Store.Batch(ctx, b.ID)
	if err != nil {
		return err
	}
	*b = *nb
	if b.LeaseOwner != d.owner() {
		// Someone else owns it now; stop here rather than race them.
		b.State = store.BatchApplied
	}
	return nil
}

// setBatch moves b from one state to another (compare-and-set) with extra fields.
func (d *Deps) setBatch(ctx context.Context, b *store.Batch, from, to store.BatchState, extra bson.M) error {
	set := bson.M{"state": to, "updated_at": d.now()}
	for k, v := range extra {
		set[k] = v
	}
	res, err := d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID, "state": from}, bson.M{"$set": set})
	if err != nil {
		return fmt.Errorf("error moving batch %s %s -> %s: %w", b.ID, from, to, err)
	}
	if res.ModifiedCount == 0 {
		return d.reload(ctx, b)
	}
	b.State = to
	return nil
}

func (d *Deps) claimedTotals(ctx context.Context, batchID string) (int, int64, error) {
	cur, err := d.Store.Requests.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.M{"batch_id": batchID, "state": store.StateClaimed}}},
		{{Key: "$group", Value: bson.M{"_id": nil, "n": bson.M{"$sum": 1}, "t": bson.M{"$sum": "$input_tokens_est"}}}},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("error counting claimed requests: %w", err)
	}
	defer cur.Close(ctx)
	var row struct {
		N int   `bson:"n"`
		T int64 `bson:"t"`
	}
	if cur.Next(ctx) {
		if err := cur.Decode(&row); err != nil {
			return 0, 0, err
		}
	}
	return row.N, row.T, cur.Err()
}

// upload renders the claimed requests into a JSONL file (streamed through a temp file, so memory stays flat
// whatever the size) and uploads it. An upload whose id was never recorded is found by name and reused.
func (d *Deps) upload(ctx context.Context, b *store.Batch) (string, int64, error) {
	name := b.ID + ".jsonl"
	var counted store.Batch
	if err := d.Store.Batches.FindOneAndUpdate(ctx, bson.M{"_id": b.ID}, bson.M{"$inc": bson.M{"upload_attempts": 1}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&counted); err != nil {
		return "", 0, fmt.Errorf("error counting upload attempt of %s: %w", b.ID, err)
	}
	if counted.UploadAttempts > 1 {
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
	cur, err := d.Store.Requests.Find(ctx, bson.M{"batch_id": batchID, "state": store.StateClaimed},
		options.Find().SetProjection(bson.M{"attempts": 1}).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(page))
	if err != nil {
		return 0, 0, fmt.Errorf("error reading claimed requests: %w", err)
	}
	defer cur.Close(ctx)
	type claimed struct {
		ID       string `bson:"_id"`
		Attempts int    `bson:"attempts"`
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var size int64
	var lines int
	var line []byte
	rs := make([]claimed, 0, page)
	ids := make([]string, 0, page)
	flush := func() error {
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
		rs = rs[:0]
		return nil
	}
	for cur.Next(ctx) {
		var r claimed
		if err := cur.Decode(&r); err != nil {
			return 0, 0, fmt.Errorf("error decoding request: %w", err)
		}
		rs = append(rs, r)
		if len(rs) == page {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return 0, 0, fmt.Errorf("error reading claimed requests: %w", err)
	}
	if err := flush(); err != nil {
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
		if _, err := d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID, "state": store.BatchCreating},
			bson.M{"$inc": bson.M{"create_attempts": 1}, "$set": bson.M{"updated_at": d.now()}}); err != nil {
			return fmt.Errorf("error counting create attempt: %w", err)
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
		if err := d.setBatch(ctx, b, store.BatchCreating, store.BatchUploaded, nil); err != nil {
			return err
		}
		return fmt.Errorf("input file of %s not visible yet: %w", b.ID, err)
	}
	if openaibatch.IsRejected(err) {
		log.Warn("batch creation rejected; releasing its requests", "error", err)
		if err := d.setBatch(ctx, b, store.BatchCreating, store.BatchAbandoned,
			bson.M{"errors": []store.BatchError{{Code: "create_rejected", Message: err.Error()}}}); err != nil {
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
	status := string(ob.Status)
	if err := d.setBatch(ctx, b, store.BatchCreating, store.BatchSubmitted, bson.M{
		"openai_batch_id": ob.ID, "openai_status": status, "status_rank": store.StatusRank(status),
		"submitted_at": now, "status_history": []store.StatusChange{{Status: status, At: now}},
	}); err != nil {
		return err
	}
	if _, err := d.Store.UpdateMany(ctx, d.Store.Requests, bson.M{"batch_id": b.ID, "state": store.StateClaimed},
		bson.M{"$set": bson.M{"state": store.StateSubmitted, "updated_at": now}}); err != nil {
		return fmt.Errorf("error marking requests of %s submitted: %w", b.ID, err)
	}
	_, _ = d.Store.Batches.UpdateOne(ctx, bson.M{"_id": b.ID}, bson.M{"$set": bson.M{"lease_until": now}})
	t, err := tasks.NewPollBatchTask(b.ID, d.Config.PollInterval)
	if err != nil {
		return err
	}
	// The scheduler polls every in-flight batch; this first poll only saves waiting for its next sync.
	return tasks.Enqueue(d.Queue, t, asynq.ProcessIn(min(d.Config.PollInterval, 2*time.Second)))
}

func (d *Deps) enqueuedTokens(ctx context.Context, model string) (int64, error) {
	cur, err := d.Store.Batches.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.M{"model": model, "state": bson.M{"$in": bson.A{store.BatchUploading, store.BatchUploaded, store.BatchCreating, store.BatchSubmitted}}}}},
		{{Key: "$group", Value: bson.M{"_id": nil, "t": bson.M{"$sum": "$input_tokens_est"}}}},
	})
	if err != nil {
		return 0, fmt.Errorf("error summing enqueued tokens: %w", err)
	}
	defer cur.Close(ctx)
	var row struct {
		T int64 `bson:"t"`
	}
	if cur.Next(ctx) {
		if err := cur.Decode(&row); err != nil {
			return 0, err
		}
	}
	return row.T, cur.Err()
}

// modelHeld reports a hold set after OpenAI answered token_limit_exceeded for this model.
func (d *Deps) modelHeld(ctx context.Context, model string) (bool, time.Time, error) {
	var m struct {
		HoldUntil time.Time `bson:"hold_until"`
	}
	err := d.Store.Models.FindOne(ctx, bson.M{"_id": model}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("error reading model hold: %w", err)
	}
	return m.HoldUntil.After(d.now()), m.HoldUntil, nil
}

// HoldModel stops builds for model until t.
func (d *Deps) HoldModel(ctx context.Context, model string, until time.Time, reason string) error {
	_, err := d.Store.Models.UpdateOne(ctx, bson.M{"_id": model},
		bson.M{"$set": bson.M{"hold_until": until, "reason": reason, "updated_at": d.now()}}, options.UpdateOne().SetUpsert(true))
	return err
}
