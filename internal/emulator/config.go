package emulator

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// Defaults applied by [Config.WithDefaults] to zero fields.
const (
	// MaxLinesDefault is the largest number of requests one batch may hold (OpenAI: 50,000).
	MaxLinesDefault = 50_000
	// MaxFileBytesDefault is the largest batch input file (OpenAI: 200 MB).
	MaxFileBytesDefault int64 = 200 << 20
	// MaxUploadBytes is the largest file POST /v1/files accepts (OpenAI: 512 MB).
	MaxUploadBytes int64 = 512 << 20
	// CompletionWindowDefault is how long a batch may run before it expires on its own.
	CompletionWindowDefault = 24 * time.Hour
	// FileNotFoundWindowDefault is used when Faults.RateFileNotFound is set and
	// Faults.FileNotFoundWindow is zero.
	FileNotFoundWindowDefault = 5 * time.Second
	// FileExpiryDefault is how long batch input, output and error files live (30 days).
	FileExpiryDefault = 30 * 24 * time.Hour
)

// Config configures a [Server]. The zero value is a fast, fault-free emulator.
type Config struct {
	// ValidatingFor, InProgressFor and FinalizingFor set the pace of the lifecycle.
	// Zero durations mean "instant": the next read after create already sees the
	// batch completed. Status is advanced lazily from elapsed time on each read;
	// no goroutine runs per batch. Lines complete evenly over InProgressFor.
	ValidatingFor, InProgressFor, FinalizingFor time.Duration
	// CancellingFor is how long a cancelled batch stays in "cancelling".
	CancellingFor time.Duration
	// CompletionWindow is how long a batch may take before it expires on its own
	// (partial output, batch_expired lines). Defaults to CompletionWindowDefault (24h);
	// a shorter value lets a test see a natural expiry. The batch's expires_at
	// reports created_at plus this window.
	CompletionWindow time.Duration
	// Seed makes randomness deterministic: synthetic content depends only on Seed and
	// the line's custom_id; per-line and batch-level faults depend on Seed, the batch
	// id and the custom_id. HTTP-level faults draw from one seeded stream, so their
	// order depends on request order.
	Seed int64
	// Faults to inject from the start; see [Server.SetFaults].
	Faults Faults
	// TokenBudget is the per-model enqueued input-token budget. The "" key is the
	// default for models without their own key. 0 or absent means unlimited.
	// A batch's estimated input tokens are enqueued from create until it is
	// terminal; a batch whose tokens would exceed the budget fails at validation
	// with token_limit_exceeded. Batches are admitted first come, first served:
	// a batch counts the admitted (past validation) batches and the batches created
	// before it that are still validating.
	TokenBudget map[string]int64
	// MaxLines is the largest number of requests per batch (too_many_tasks above it).
	// Defaults to MaxLinesDefault.
	MaxLines int
	// MaxFileBytes is the largest batch input file. Defaults to MaxFileBytesDefault.
	MaxFileBytes int64
	// Logger receives the emulator's log lines. Defaults to discarding them.
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now; tests may pass a clock they advance
	// by hand to step through the lifecycle without sleeping.
	Now func() time.Time
}

// Faults describes the faults the emulator injects. Rates are fractions in 0..1.
// Batch-level and per-line faults are decided when a batch is created, with the
// faults in force at that moment.
type Faults struct {
	// Rate429 answers a /v1/* request with 429, Retry-After (whole seconds, rounded
	// up) and Retry-After-Ms headers set from RetryAfter.
	Rate429    float64
	RetryAfter time.Duration
	// Rate500 and Rate503 answer a /v1/* request with a server error.
	Rate500, Rate503 float64
	// RateSlow sleeps SlowDelay before answering (to exceed client timeouts). The
	// sleep ends early when the client goes away.
	RateSlow  float64
	SlowDelay time.Duration
	// RateLoseCreate creates the batch for real on POST /v1/batches, then answers
	// 500 or drops the connection, so the client never sees the batch.
	RateLoseCreate float64
	// RateFileNotFound answers POST /v1/batches with 400 "Cannot find file …"
	// (param file_id) when the input file was uploaded less than
	// FileNotFoundWindow ago (default FileNotFoundWindowDefault). The batch is not
	// created.
	RateFileNotFound   float64
	FileNotFoundWindow time.Duration

	// RateLine4xx puts a line in the error file with response.status_code 400,
	// body.error{message,type,param,code} and a null top-level error.
	RateLine4xx float64
	// RateRefusal answers a line with status 200, message.content null and
	// message.refusal set.
	RateRefusal float64
	// RateLength answers a line with status 200, finish_reason "length" and the
	// content cut in the middle.
	RateLength float64
	// RateInvalidSchema answers a line with status 200 and JSON that is valid JSON
	// but not valid for the line's schema (a required property missing or an enum
	// value outside the set). Lines without a JSON schema are not affected.
	RateInvalidSchema float64
	// Shuffle writes output and error lines in random order.
	Shuffle bool

	// RateBatchFail fails a batch at validation with a synthetic error even though
	// its file is fine.
	RateBatchFail float64
	// RateExpire expires a batch halfway through in_progress: about half the lines
	// in the output file, the rest as batch_expired lines in the error file.
	RateExpire float64
	// RateZeroSuccess ends a batch completed with no output file: every line is a
	// 4xx line in the error file.
	RateZeroSuccess float64
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.CompletionWindow = cmp.Or(c.CompletionWindow, CompletionWindowDefault)
	c.MaxLines = cmp.Or(c.MaxLines, MaxLinesDefault)
	c.MaxFileBytes = cmp.Or(c.MaxFileBytes, MaxFileBytesDefault)
	c.TokenBudget = maps.Clone(c.TokenBudget)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid field of c, naming the field.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, nonNegative("ValidatingFor", c.ValidatingFor),
		nonNegative("InProgressFor", c.InProgressFor),
		nonNegative("FinalizingFor", c.FinalizingFor),
		nonNegative("CancellingFor", c.CancellingFor),
		nonNegative("CompletionWindow", c.CompletionWindow))
	if c.MaxLines < 0 {
		errs = append(errs, fmt.Errorf("MaxLines must not be negative, got %d", c.MaxLines))
	}
	if c.MaxFileBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxFileBytes must not be negative, got %d", c.MaxFileBytes))
	}
	for _, model := range slices.Sorted(maps.Keys(c.TokenBudget)) {
		if budget := c.TokenBudget[model]; budget < 0 {
			errs = append(errs, fmt.Errorf("TokenBudget[%q] must not be negative, got %d", model, budget))
		}
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Faults: %w", err))
	}
	return errors.Join(errs...)
}

// Validate reports every invalid field of f, naming the field.
func (f Faults) Validate() error {
	var errs []error
	rates := []struct {
		name string
		v    float64
	}{
		{"Rate429", f.Rate429}, {"Rate500", f.Rate500}, {"Rate503", f.Rate503},
		{"RateSlow", f.RateSlow}, {"RateLoseCreate", f.RateLoseCreate},
		{"RateFileNotFound", f.RateFileNotFound}, {"RateLine4xx", f.RateLine4xx},
		{"RateRefusal", f.RateRefusal}, {"RateLength", f.RateLength},
		{"RateInvalidSchema", f.RateInvalidSchema}, {"RateBatchFail", f.RateBatchFail},
		{"RateExpire", f.RateExpire}, {"RateZeroSuccess", f.RateZeroSuccess},
	}
	for _, r := range rates {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be in 0..1, got %g", r.name, r.v))
		}
	}
	if sum := f.Rate429 + f.Rate500 + f.Rate503; sum > 1 {
		errs = append(errs, fmt.Errorf("Rate429+Rate500+Rate503 must not exceed 1, got %g", sum))
	}
	if sum := f.RateLine4xx + f.RateRefusal + f.RateLength + f.RateInvalidSchema; sum > 1 {
		errs = append(errs, fmt.Errorf("RateLine4xx+RateRefusal+RateLength+RateInvalidSchema must not exceed 1, got %g", sum))
	}
	errs = append(errs, nonNegative("RetryAfter", f.RetryAfter),
		nonNegative("SlowDelay", f.SlowDelay),
		nonNegative("FileNotFoundWindow", f.FileNotFoundWindow))
	return errors.Join(errs...)
}

func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s must not be negative, got %s", name, d)
	}
	return nil
}

// budgetFor returns the enqueued-token budget for model, 0 meaning unlimited.
func (c Config) budgetFor(model string) int64 {
	if b, ok := c.TokenBudget[model]; ok {
		return b
	}
	return c.TokenBudget[""]
}
