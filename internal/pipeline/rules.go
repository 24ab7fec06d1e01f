package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/floridify/batchsynth/internal/pricing"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// The rules of the user's actions (submit, cancel a job, cancel a batch, retry a job) live here and in
// control.go and submit.go, once. The CLI, the HTTP API and the dashboard call them and only translate their
// typed errors: an exit code, an HTTP status, a message.

// Typed errors of the actions. Match them with errors.Is; the error returned wraps one of them with the id
// and state at fault.
var (
	// ErrNotFound is store.ErrNotFound: no job or batch has the id given.
	ErrNotFound = store.ErrNotFound
	// ErrJobFinished is returned for cancelling a job that is done or already cancelled.
	ErrJobFinished = errors.New("the job has ended; there is nothing left to cancel")
	// ErrNotCancellable is returned for cancelling a batch that has already ended.
	ErrNotCancellable = errors.New("the batch has ended; there is nothing left to cancel")
	// ErrInvalidInput is returned for a submission the rules refuse; the error is an *InvalidInputError.
	ErrInvalidInput = errors.New("invalid input")
)

// InvalidInputError is ErrInvalidInput naming the field at fault.
type InvalidInputError struct {
	Field   string // as the API names it: "model", "priority", "words", ...
	Message string
}

func (e *InvalidInputError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalidInput) hold.
func (e *InvalidInputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(field, format string, args ...any) error {
	return &InvalidInputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// CheckSubmission is the submit rule's validation: it fills the defaults (mode, model and priority of the
// configuration) and refuses what the pipeline could not run. Submit calls it; the HTTP intake calls it too, to
// answer before it reads an Idempotency-Key, and an estimate checks what a submission would.
func (d *Deps) CheckSubmission(s *Submission) error {
	if len(s.Words) == 0 {
		return invalid("words", "no word to synthesize")
	}
	if len(s.Components) == 0 {
		return invalid("components", "no component requested")
	}
	for _, c := range s.Components {
		if _, ok := synthesis.Lookup(c); !ok {
			return invalid("components", "%q is not a component (want %s)", c, strings.Join(synthesis.Names(), ", "))
		}
	}
	s.Model = strings.TrimSpace(s.Model)
	if s.Model == "" {
		s.Model = d.Config.Model
	}
	// "auto" routes each component to its tier's model (synthesis.RouteModel), all of which are priced.
	if _, ok := pricing.Lookup(s.Model); !ok && s.Model != synthesis.ModelAuto {
		return invalid("model", "%q has no price in the price table (known: %s, or %s)", s.Model, strings.Join(knownModels(), ", "), synthesis.ModelAuto)
	}
	s.Mode = strings.TrimSpace(s.Mode)
	if s.Mode == "" {
		s.Mode = d.Config.Mode
	}
	if !slices.Contains(synthesis.Modes(), s.Mode) {
		return invalid("mode", "%q is not a mode (want %s)", s.Mode, strings.Join(synthesis.Modes(), ", "))
	}
	s.Priority = strings.TrimSpace(s.Priority)
	if s.Priority == "" {
		s.Priority = PriorityNormal
	}
	if !slices.Contains(Priorities(), s.Priority) {
		return invalid("priority", "%q is not a priority (want %s)", s.Priority, strings.Join(Priorities(), ", "))
	}
	return nil
}

func knownModels() []string {
	out := make([]string, 0, len(pricing.Table))
	for m := range pricing.Table {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// controlLockTTL bounds how long a dead process blocks the actions on a job; a live one renews it.
const controlLockTTL = 30 * time.Second

// lockJob serializes the actions on one job (cancel, retry) across processes, waiting for its turn. The moves
// are compare-and-set, but FerretDB evaluates a multi-document update's filter before writing without
// re-checking it (see lockModel): two racing retries could both requeue the same requests, and a retry racing
// a cancel could put back a request a build has meanwhile claimed, which would then be sent twice.
func (d *Deps) lockJob(ctx context.Context, jobID string) (func(), error) {
	if d.Redis == nil {
		return func() {}, nil
	}
	key := "batchsynth:control:" + jobID
	token := NewID("lock")
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		ok, err := d.Redis.SetNX(ctx, key, token, controlLockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("error locking job %s: %w", jobID, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	return d.holdLock(ctx, key, token, controlLockTTL), nil
}
