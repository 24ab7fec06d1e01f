package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// Priorities a submission may carry. Urgent jobs (and jobs of at most ImmediateSettings.MaxWords words)
// skip the Batch API: their requests go out as immediate chat completions, at twice the price and
// seconds instead of hours.
const (
	PriorityNormal = "normal"
	PriorityUrgent = "urgent"
)

// Priorities lists the accepted priorities.
func Priorities() []string { return []string{PriorityNormal, PriorityUrgent} }

// The immediate gate is per process, not per Deps: the rate limit protects the OpenAI key, which every Deps
// of a process shares. Its limits come from the configuration (BATCHSYNTH_IMMEDIATE_CONCURRENCY and
// BATCHSYNTH_IMMEDIATE_RATE, per process: a fleet of N workers sends up to N times as many calls, which is
// what OpenAI's per-key rate limits must allow); a Deps with other limits gets a gate of its own.
var immediateGates struct {
	mu    sync.Mutex
	gates map[[2]float64]*gate
}

func immediateGate(c config.Config) *gate {
	key := [2]float64{float64(max(c.ImmediateConcurrency, 1)), c.ImmediateRate}
	if key[1] <= 0 {
		key[1] = config.ImmediateRateDefault
	}
	immediateGates.mu.Lock()
	defer immediateGates.mu.Unlock()
	if immediateGates.gates == nil {
		immediateGates.gates = map[[2]float64]*gate{}
	}
	g, ok := immediateGates.gates[key]
	if !ok {
		g = newGate(int(key[0]), key[1])
		immediateGates.gates[key] = g
	}
	return g
}

// ImmediateFor reports whether a job of this priority and size takes the immediate path: an urgent job
// always does, and so does a job of at most BATCHSYNTH_IMMEDIATE_MAX_WORDS words when that is set.
func ImmediateFor(c config.Config, priority string, words int) bool {
	return priority == PriorityUrgent || (c.ImmediateMaxWords > 0 && words > 0 && words <= c.ImmediateMaxWords)
}

// AfterExpand is Enqueue's hook once a job is expanded: an immediate job's requests are sent now, and
// handled reports that the build trigger is not needed (requests that fell back are handed to a build here).
func (d *Deps) AfterExpand(ctx context.Context, job *store.Job) (handled bool, err error) {
	if !ImmediateFor(d.Config, job.Priority, job.WordsTotal) {
		return false, nil
	}
	return true, d.RunImmediate(ctx, job.ID)
}

// ImmediateStats is what one RunImmediate did.
type ImmediateStats struct {
	Succeeded, Dead, FellBack, Skipped int
}

// RunImmediate sends a job's pending requests as immediate chat completions: the same stored bodies a batch
// would carry, judged by the same rules (openaibatch.ParseLine, synthesis.Decode) and applied through the
// same writer, with cost recorded at immediate prices.
//
// Each request is claimed by compare-and-set first, so it is either in a batch or sent here, never both.
// While a call is in flight the request carries a batch id no batch document has: if this worker dies, the
// sweep finds the orphan after BATCHSYNTH_STALE_AFTER and returns it to pending for a normal batch. A call
// that fails for transport reasons (429, 5xx, timeout after the client's retries) gives its attempt back and
// leaves the request to the batch path, which will get to it however long OpenAI is unavailable.
func (d *Deps) RunImmediate(ctx context.Context, jobID string) error {
	job, err := d.Store.Job(ctx, jobID)
	if err != nil {
		return err
	}
	g := immediateGate(d.Config)
	log := d.log().With("job_id", job.ID, "model", job.Model)
	pending, err := d.Store.PendingRequestsOfJob(ctx, job.ID, job.Model)
	if err != nil {
		return err
	}
	start := time.Now()
	work := make(chan store.Request)
	var (
		mu    sync.Mutex
		stats ImmediateStats
		errs  []error
		wg    sync.WaitGroup
	)
	for range max(d.Config.ImmediateConcurrency, 1) {
		wg.Go(func() {
			for r := range work {
				out, err := d.immediateOne(ctx, job, &r, g)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case out == store.StateSucceeded:
					stats.Succeeded++
				case out == store.StateDead:
					stats.Dead++
				case out == store.StatePending:
					stats.FellBack++
				default:
					stats.Skipped++
				}
				mu.Unlock()
			}
		})
	}
	var readErr error
	for r, err := range pending {
		if err != nil {
			readErr = err
			break
		}
		select {
		case work <- r:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if readErr != nil {
		errs = append(errs, readErr)
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	log.Info("immediate requests sent", "succeeded", stats.Succeeded, "dead", stats.Dead, "fell_back", stats.FellBack,
		"skipped", stats.Skipped, "duration", time.Since(start).Round(time.Millisecond))
	if stats.FellBack > 0 || len(errs) > 0 {
		// Whatever is still pending goes out in a batch rather than waiting for the sweep's flush delay.
		errs = append(errs, d.triggerBuild(job.Model, true))
	}
	return errors.Join(errs...)
}

// immediateOne sends one request until it succeeds, dies, falls back to the batch path (returned state
// pending) or turns out to be someone else's (returned state "").
func (d *Deps) immediateOne(ctx context.Context, job *store.Job, r *store.Request, g *gate) (store.RequestState, error) {
	marker := "imm_" + job.ID
	log := d.log().With("job_id", job.ID, "request_id", r.ID)
	// Loaded before the claim, so that a failure here leaves nothing claimed.
	bodies, err := d.Store.BodiesOf(ctx, []string{r.ID})
	if err != nil {
		return "", err
	}
	body := bodies[r.ID]
	for {
		if err := g.acquire(ctx); err != nil {
			return "", err
		}
		claimed, err := d.Store.ClaimImmediate(ctx, r.ID, marker, d.now())
		if err != nil || claimed == nil {
			// nil: a batch builder claimed it first, or it settled meanwhile.
			g.release()
			return "", err
		}
		callStart := time.Now()
		res, transportErr := d.chat(ctx, body)
		g.release()
		if transportErr != nil {
			log.Warn("immediate call failed; leaving the request to the batch path", "error", transportErr)
			if _, err := d.Store.ReleaseImmediate(context.WithoutCancel(ctx), claimed,
				"immediate call failed: "+transportErr.Error(), d.now()); err != nil {
				return "", err
			}
			return store.StatePending, nil
		}
		usage := claimed.Usage.Add(res.Usage)
		cost := claimed.CostUSD + pricing.Immediate(claimed.Model, res.Usage)
		reason := res.Reason
		var parsed *synthesis.Parsed
		if res.OK {
			parsed, err = synthesis.Decode(claimed.Kind, claimed.Word, len(claimed.DefinitionIDs), claimed.Components, res.Content)
			if err != nil {
				reason = "invalid answer: " + err.Error()
			}
		}
		now := d.now()
		if reason == "" {
			// Floridify's documents first, then the settle: the claim makes this runner the only writer, and
			// the writes are keyed by request id, so a crash between the two is repaired by doing both again.
			w := synthesis.NewWrites(now)
			if err := w.Add(applyInput(claimed), parsed); err != nil {
				return "", err
			}
			if err := d.writeFloridify(ctx, w); err != nil {
				return "", err
			}
			moved, err := d.Store.SucceedImmediate(ctx, claimed, res.Content, usage, cost, now)
			if err != nil {
				return "", err
			}
			if !moved {
				log.Warn("immediate request was released while its call ran (call slower than BATCHSYNTH_STALE_AFTER)")
				return "", nil
			}
			log.Debug("immediate request applied", "duration", time.Since(callStart).Round(time.Millisecond))
			return store.StateSucceeded, nil
		}
		state := store.StatePending
		if claimed.Attempts >= d.Config.MaxAttempts {
			state = store.StateDead
		}
		if _, err := d.Store.FailImmediate(ctx, claimed, state, reason, usage, cost, now); err != nil {
			return "", err
		}
		log.Info("immediate attempt failed", "attempt", claimed.Attempts, "reason", reason, "state", state)
		if state == store.StateDead {
			return state, nil
		}
		r = claimed
	}
}

// chat sends one stored body to chat/completions and judges the answer exactly as a batch output line is
// judged. A non-nil error is a transport failure (nothing to learn about the request itself).
func (d *Deps) chat(ctx context.Context, body string) (openaibatch.Result, error) {
	timeout := min(cmp.Or(d.Config.StaleAfter, 2*time.Minute)/2, time.Minute)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var raw []byte
	err := d.OpenAI.OpenAI().Post(cctx, "chat/completions", nil, &raw, option.WithRequestBody("application/json", []byte(body)))
	status := 200
	if err != nil {
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode == 429 || apiErr.StatusCode >= 500 {
			return openaibatch.Result{}, err
		}
		// A 4xx other than 429 is about this request (invalid body, unknown model): a failed attempt.
		status = apiErr.StatusCode
		raw, _ = json.Marshal(map[string]any{"error": map[string]string{"message": apiErr.Message, "code": apiErr.Code, "type": apiErr.Type}})
	}
	line, err := json.Marshal(map[string]any{"custom_id": "immediate",
		"response": map[string]any{"status_code": status, "body": json.RawMessage(raw)}})
	if err != nil {
		return openaibatch.Result{}, fmt.Errorf("error wrapping the answer: %w", err)
	}
	res, err := openaibatch.ParseLine(line)
	if err != nil {
		return openaibatch.Result{Reason: "unreadable answer: " + err.Error()}, nil
	}
	return res, nil
}

// gate bounds calls in flight and spaces their starts at most rate per second.
type gate struct {
	sem   chan struct{}
	mu    sync.Mutex
	next  time.Time
	every time.Duration
}

func newGate(concurrency int, perSecond float64) *gate {
	return &gate{sem: make(chan struct{}, concurrency), every: time.Duration(float64(time.Second) / perSecond)}
}

func (g *gate) acquire(ctx context.Context) error {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	now := time.Now()
	at := g.next
	if at.Before(now) {
		at = now
	}
	g.next = at.Add(g.every)
	g.mu.Unlock()
	if wait := at.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			<-g.sem
			return ctx.Err()
		}
	}
	return nil
}

func (g *gate) release() { <-g.sem }
