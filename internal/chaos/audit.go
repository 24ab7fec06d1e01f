// Package chaos proves batchsynth's failure rules (docs/reliability.md) end to end. Audit checks a drained
// database against the Batch API emulator's own log: nothing lost, nothing applied twice, no batch paid for
// twice. The package's test runs the built binary as a fleet of processes and kills them while it works.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// AuditOptions relax checks that a test's own actions make untrue.
type AuditOptions struct {
	// ReusedAttempts allows one attempt number of a request in several emulator batches: RetryJob starts a
	// dead request's attempts again from zero.
	ReusedAttempts bool
}

// Report is what Audit counted; Problems lists every broken rule (empty when all hold).
type Report struct {
	Requests        int
	States          map[store.RequestState]int
	Batches         int // synthesis_batches documents
	EmulatorBatches int
	Abandoned       int // batch documents never created at OpenAI
	SuccessLines    int // lines the emulator answered with a valid success
	BilledLines     int // lines in output files (billed)
	Billed          store.Usage
	Recorded        store.Usage // sum of the requests' usage in MongoDB
	Examples        int
	Problems        []string
}

// Err returns the problems as one error, nil when there are none.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	const show = 25
	p := r.Problems
	more := ""
	if len(p) > show {
		more = fmt.Sprintf("\n... and %d more", len(p)-show)
		p = p[:show]
	}
	return errors.New(strings.Join(p, "\n") + more)
}

func (r *Report) String() string {
	return fmt.Sprintf("requests %d %v; batches %d (abandoned %d), emulator batches %d; success lines %d, billed lines %d; billed in %d out %d, recorded in %d out %d; examples %d; problems %d",
		r.Requests, r.States, r.Batches, r.Abandoned, r.EmulatorBatches, r.SuccessLines, r.BilledLines,
		r.Billed.InputTokens, r.Billed.OutputTokens, r.Recorded.InputTokens, r.Recorded.OutputTokens, r.Examples, len(r.Problems))
}

func (r *Report) fail(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Audit checks a database whose work has drained (every job finished) against the emulator's records:
//
//   - every request is succeeded (and applied), dead or cancelled, and a dead or cancelled one says why;
//   - every batch document is applied or abandoned; an applied one names an emulator batch, an abandoned one
//     none;
//   - the emulator created exactly the batches the documents name: each emulator batch carries the id of
//     exactly one document in its metadata and that document names it back (none duplicated, none orphaned);
//   - no request attempt ran in two emulator batches (unless opts.ReusedAttempts);
//   - no request got two valid answers, a request with a valid answer is succeeded, and a succeeded request
//     that was not served from the result cache got exactly one, on its last attempt (nothing applied twice,
//     nothing paid for again after it succeeded);
//   - the billed tokens recorded in MongoDB (the sum over requests) equal the sum over the lines the
//     emulator billed, and the batch documents' usage equals the emulator batches' usage;
//   - Floridify's examples: as many documents as links, no definition links one twice, every example's
//     definition links it;
//   - a dead or cancelled definition request left no trace: its definitions hold none of its components
//     unless another request of the same definition succeeded.
func Audit(ctx context.Context, st *store.Store, emu []emulator.BatchRecord, opts AuditOptions) (*Report, error) {
	r := &Report{States: map[store.RequestState]int{}}

	var reqs []store.Request
	cur, err := st.Collection(store.CollRequests).Find(ctx, bson.M{})
	if err != nil {
		return nil, fmt.Errorf("error reading requests: %w", err)
	}
	if err := cur.All(ctx, &reqs); err != nil {
		return nil, fmt.Errorf("error reading requests: %w", err)
	}
	byID := make(map[string]*store.Request, len(reqs))
	for i := range reqs {
		q := &reqs[i]
		byID[q.ID] = q
		r.Requests++
		r.States[q.State]++
		r.Recorded = r.Recorded.Add(q.Usage)
		switch q.State {
		case store.StateSucceeded:
			if !q.Applied {
				r.fail("request %s succeeded but was never applied", q.ID)
			}
			if q.Result == "" {
				r.fail("request %s succeeded without a stored result", q.ID)
			}
		case store.StateDead, store.StateCancelled:
			if strings.TrimSpace(q.LastError) == "" {
				r.fail("request %s is %s without a reason (last_error empty)", q.ID, q.State)
			}
		default:
			r.fail("request %s is still %s (attempts %d, batch %q)", q.ID, q.State, q.Attempts, q.BatchID)
		}
	}

	var docs []store.Batch
	cur, err = st.Collection(store.CollBatches).Find(ctx, bson.M{})
	if err != nil {
		return nil, fmt.Errorf("error reading batches: %w", err)
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("error reading batches: %w", err)
	}
	docByID := make(map[string]*store.Batch, len(docs))
	docByOpenAI := map[string]*store.Batch{}
	var docUsage store.Usage
	for i := range docs {
		b := &docs[i]
		r.Batches++
		docByID[b.ID] = b
		switch b.State {
		case store.BatchApplied:
			if b.OpenAIBatchID == "" {
				r.fail("batch document %s is applied but names no OpenAI batch", b.ID)
			}
		case store.BatchAbandoned:
			r.Abandoned++
			if b.OpenAIBatchID != "" {
				r.fail("batch document %s is abandoned but names OpenAI batch %s", b.ID, b.OpenAIBatchID)
			}
		default:
			r.fail("batch document %s is still %s (OpenAI %s %s)", b.ID, b.State, b.OpenAIBatchID, b.OpenAIStatus)
		}
		if b.OpenAIBatchID != "" {
			if other, dup := docByOpenAI[b.OpenAIBatchID]; dup {
				r.fail("batch documents %s and %s both name OpenAI batch %s", other.ID, b.ID, b.OpenAIBatchID)
			}
			docByOpenAI[b.OpenAIBatchID] = b
			docUsage = docUsage.Add(b.Usage)
		}
	}

	// The emulator's own log: batches, and every line it ran.
	metaSeen := map[string]string{}
	var emuUsage store.Usage
	successes := map[string][]string{} // request id -> custom ids answered validly
	attemptAt := map[string]string{}   // custom id -> emulator batch that ran it
	for _, eb := range emu {
		r.EmulatorBatches++
		emuUsage = emuUsage.Add(store.Usage{InputTokens: eb.Usage.InputTokens, CachedTokens: eb.Usage.CachedTokens, OutputTokens: eb.Usage.OutputTokens})
		ours := eb.Metadata[openaibatch.MetadataBatchID]
		switch {
		case ours == "":
			r.fail("emulator batch %s carries no %s metadata", eb.ID, openaibatch.MetadataBatchID)
		case metaSeen[ours] != "":
			r.fail("batch document %s was created twice at the emulator: %s and %s", ours, metaSeen[ours], eb.ID)
		default:
			metaSeen[ours] = eb.ID
			d := docByID[ours]
			switch {
			case d == nil:
				r.fail("emulator batch %s names batch document %s, which does not exist (orphaned)", eb.ID, ours)
			case d.OpenAIBatchID != eb.ID:
				r.fail("emulator batch %s belongs to document %s, which names %q instead (orphaned)", eb.ID, ours, d.OpenAIBatchID)
			}
		}
		for _, l := range eb.Lines {
			if l.InOutput {
				r.BilledLines++
				r.Billed = r.Billed.Add(store.Usage{InputTokens: l.Usage.InputTokens, CachedTokens: l.Usage.CachedTokens, OutputTokens: l.Usage.OutputTokens})
			}
			if l.Outcome == emulator.OutcomeExpired || l.Outcome == emulator.OutcomeCancelled {
				continue // never ran
			}
			if prev, dup := attemptAt[l.CustomID]; dup && !opts.ReusedAttempts {
				r.fail("request attempt %s ran twice: in emulator batches %s and %s", l.CustomID, prev, eb.ID)
			}
			attemptAt[l.CustomID] = eb.ID
			if l.Outcome == emulator.OutcomeSuccess {
				r.SuccessLines++
				id, _, err := synthesis.ParseCustomID(l.CustomID)
				if err != nil {
					r.fail("emulator batch %s ran a line with a foreign custom_id %q", eb.ID, l.CustomID)
					continue
				}
				successes[id] = append(successes[id], l.CustomID)
			}
		}
	}
	for id := range docByOpenAI {
		if _, ok := metaSeen[docByOpenAI[id].ID]; !ok {
			r.fail("batch document %s names OpenAI batch %s, which the emulator never created", docByOpenAI[id].ID, id)
		}
	}

	for id, lines := range successes {
		q := byID[id]
		switch {
		case q == nil:
			r.fail("the emulator answered request %s (%v), which is not in MongoDB", id, lines)
		case len(lines) > 1:
			r.fail("request %s was answered validly %d times (%v): paid for again after it succeeded", id, len(lines), lines)
		case q.State != store.StateSucceeded:
			r.fail("request %s got a valid answer (%s) but is %s (%s)", id, lines[0], q.State, q.LastError)
		case lines[0] != synthesis.CustomID(q.ID, q.Attempts):
			r.fail("request %s succeeded with %s but counts %d attempts: claimed again after its success", id, lines[0], q.Attempts)
		}
	}
	for _, q := range reqs {
		if q.State == store.StateSucceeded && q.CachedFrom == "" && len(successes[q.ID]) == 0 {
			r.fail("request %s is succeeded but the emulator never answered it validly", q.ID)
		}
	}

	if r.Recorded.InputTokens != r.Billed.InputTokens || r.Recorded.OutputTokens != r.Billed.OutputTokens {
		r.fail("billed tokens differ: MongoDB requests record input %d output %d, the emulator billed input %d output %d over %d lines",
			r.Recorded.InputTokens, r.Recorded.OutputTokens, r.Billed.InputTokens, r.Billed.OutputTokens, r.BilledLines)
	}
	if docUsage.InputTokens != emuUsage.InputTokens || docUsage.OutputTokens != emuUsage.OutputTokens {
		r.fail("batch usage differs: documents record input %d output %d, emulator batches input %d output %d",
			docUsage.InputTokens, docUsage.OutputTokens, emuUsage.InputTokens, emuUsage.OutputTokens)
	}

	if err := auditFloridify(ctx, st, reqs, r); err != nil {
		return nil, err
	}
	sort.Strings(r.Problems)
	return r, nil
}

// componentField names the definition field each per-definition component writes.
var componentField = map[string]string{
	"synonyms": "synonyms", "examples": "example_ids", "antonyms": "antonyms", "cefr_level": "cefr_level",
	"frequency_band": "frequency_band", "register": "language_register", "domain": "domain",
	"grammar_patterns": "grammar_patterns", "collocations": "collocations", "usage_notes": "usage_notes",
	"regional_variants": "region", "word_forms": "word_forms",
}

func auditFloridify(ctx context.Context, st *store.Store, reqs []store.Request, r *Report) error {
	var defs []bson.M
	cur, err := st.Collection(store.CollDefinitions).Find(ctx, bson.M{})
	if err != nil {
		return fmt.Errorf("error reading definitions: %w", err)
	}
	if err := cur.All(ctx, &defs); err != nil {
		return fmt.Errorf("error reading definitions: %w", err)
	}
	defByID := map[bson.ObjectID]bson.M{}
	links := map[bson.ObjectID]bson.ObjectID{} // example -> definition linking it
	for _, d := range defs {
		id, _ := d["_id"].(bson.ObjectID)
		defByID[id] = d
		ids, _ := d["example_ids"].(bson.A)
		seen := map[bson.ObjectID]bool{}
		for _, v := range ids {
			ex, _ := v.(bson.ObjectID)
			if seen[ex] {
				r.fail("definition %s links example %s twice", id.Hex(), ex.Hex())
			}
			seen[ex] = true
			if other, dup := links[ex]; dup {
				r.fail("example %s is linked by definitions %s and %s", ex.Hex(), other.Hex(), id.Hex())
			}
			links[ex] = id
		}
	}
	var exs []store.Example
	cur, err = st.Collection(store.CollExamples).Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"_id": 1, "definition_id": 1}))
	if err != nil {
		return fmt.Errorf("error reading examples: %w", err)
	}
	if err := cur.All(ctx, &exs); err != nil {
		return fmt.Errorf("error reading examples: %w", err)
	}
	r.Examples = len(exs)
	if len(exs) != len(links) {
		r.fail("%d example documents but %d links from definitions: an example is duplicated or orphaned", len(exs), len(links))
	}
	for _, ex := range exs {
		if d, ok := links[ex.ID]; !ok {
			r.fail("example %s (definition %s) is linked by no definition", ex.ID.Hex(), ex.DefinitionID.Hex())
		} else if d != ex.DefinitionID {
			r.fail("example %s belongs to definition %s but definition %s links it", ex.ID.Hex(), ex.DefinitionID.Hex(), d.Hex())
		}
	}

	// A failed request writes nothing: the definitions of a dead or cancelled request hold none of its
	// components, unless another request for the same definition and component succeeded.
	covered := map[bson.ObjectID]map[string]bool{}
	for _, q := range reqs {
		if q.State != store.StateSucceeded {
			continue
		}
		for _, d := range q.DefinitionIDs {
			if covered[d] == nil {
				covered[d] = map[string]bool{}
			}
			for _, c := range q.Components {
				covered[d][c] = true
			}
		}
	}
	for _, q := range reqs {
		if q.Kind != store.TargetDefinition || (q.State != store.StateDead && q.State != store.StateCancelled) {
			continue
		}
		for _, did := range q.DefinitionIDs {
			d := defByID[did]
			if d == nil {
				continue
			}
			for _, c := range q.Components {
				f, ok := componentField[c]
				if !ok || covered[did][c] {
					continue
				}
				if !emptyValue(d[f]) {
					r.fail("request %s is %s but definition %s holds %s (%s = %v): a failed attempt was written", q.ID, q.State, did.Hex(), c, f, d[f])
				}
			}
		}
	}
	return nil
}

func emptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bson.A:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}
