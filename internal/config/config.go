// Package config reads batchsynth's settings from the environment (12-factor style). Every setting has a
// default that works in `batchsynth dev`; Validate names the variable at fault.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults. Exported so docs, flags and tests share one source.
const (
	DatabaseDefault        = "floridify"
	ModelDefault           = "gpt-4o-mini"
	PollIntervalDefault    = 30 * time.Second
	FlushDelayDefault      = 30 * time.Second
	SweepIntervalDefault   = 15 * time.Second
	SyncIntervalDefault    = 10 * time.Second
	MaxLinesDefault        = 50_000
	MaxFileBytesDefault    = 200 << 20
	MaxAttemptsDefault     = 3
	ConcurrencyDefault     = 10
	ShutdownTimeoutDefault = 25 * time.Second
	LeaseDurationDefault   = 15 * time.Second
	HTTPAddrDefault        = "127.0.0.1:8080"
	ModeDefault            = "packed"
	StaleAfterDefault      = 2 * time.Minute

	// Immediate path: MaxWords is off by default (small submissions are cheap either way, and a deployment
	// chooses whether latency is worth twice the price).
	ImmediateMaxWordsDefault    = 0
	ImmediateConcurrencyDefault = 4
	ImmediateRateDefault        = 5.0
)

// Config is the effective configuration of one process.
type Config struct {
	RedisURL      string // empty: dev mode starts miniredis
	MongoURI      string // empty: dev mode starts FerretDB
	Database      string
	OpenAIKey     string // empty: dev mode starts the emulator
	OpenAIBaseURL string
	Model         string
	Mode          string
	APIToken      string
	HTTPAddr      string

	PollInterval  time.Duration // how often each in-flight batch is polled
	FlushDelay    time.Duration // pending requests older than this are flushed into a batch by the sweep
	SweepInterval time.Duration
	SyncInterval  time.Duration // PeriodicTaskManager sync of poll entries from MongoDB
	StaleAfter    time.Duration // a claimed/creating batch or expanding job untouched this long is resumed by the sweep
	LeaseDuration time.Duration // scheduler leadership lease in Redis

	MaxLines     int   // per input file
	MaxFileBytes int64 // per input file
	TokenBudget  int64 // per-model enqueued input-token budget; 0 = unlimited
	MaxAttempts  int   // per request before it is dead

	// MongoMaxBulk is the most statements per bulk write command; 0 lets the store choose by server
	// (store.MaxBulkDefault on MongoDB, store.FerretDBMaxBulk on FerretDB). FerretDB with its PostgreSQL
	// backend needs less than its pool_max_conns, shared by all commands in flight.
	MongoMaxBulk int

	Concurrency     int
	ShutdownTimeout time.Duration
	LogFormat       string // json | text
	LogLevel        string

	// The immediate path's limits are per process: a fleet of N workers sends up to N times as many calls,
	// which is what OpenAI's per-key rate limits must allow.
	ImmediateMaxWords    int     // a job of at most this many words goes immediate; 0: only urgent jobs do
	ImmediateConcurrency int     // chat completions in flight at once
	ImmediateRate        float64 // chat completions started per second

	// PeriodicJobs is the scheduler's periodic jobs, unparsed (the scheduler owns their syntax and checks it
	// at start).
	PeriodicJobs string
	// MonitoringWritable lets Asynqmon's buttons change queues; off, it is read-only.
	MonitoringWritable bool

	set map[string]bool // the variables given (non-empty) in the environment
}

// IsSet reports whether variable name was given, for a command that picks its own default when it was not
// (dev mode's demo pace).
func (c Config) IsSet(name string) bool { return c.set[name] }

// FromEnv reads the environment through getenv (os.Getenv when nil) and fills defaults.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	set := map[string]bool{}
	read := getenv
	getenv = func(name string) string {
		v := read(name)
		if v != "" {
			set[name] = true
		}
		return v
	}
	var errs []error
	dur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration like 30s, got %q", name, v))
			return def
		}
		return d
	}
	num := func(name string, def int64) int64 {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: want a non-negative integer, got %q", name, v))
			return def
		}
		return n
	}
	posNum := func(name string, def float64) float64 {
		v := getenv(name)
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive number, got %q", name, v))
			return def
		}
		return f
	}
	flag := func(name string) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: want true or false, got %q", name, v))
		}
		return b
	}
	c := Config{
		RedisURL:        getenv("REDIS_URL"),
		MongoURI:        getenv("MONGODB_URI"),
		Database:        cmp.Or(getenv("MONGODB_DATABASE"), DatabaseDefault),
		OpenAIKey:       getenv("OPENAI_API_KEY"),
		OpenAIBaseURL:   getenv("OPENAI_BASE_URL"),
		Model:           cmp.Or(getenv("BATCHSYNTH_MODEL"), ModelDefault),
		Mode:            cmp.Or(getenv("BATCHSYNTH_MODE"), ModeDefault),
		APIToken:        getenv("BATCHSYNTH_API_TOKEN"),
		HTTPAddr:        cmp.Or(getenv("BATCHSYNTH_HTTP_ADDR"), HTTPAddrDefault),
		PollInterval:    dur("BATCHSYNTH_POLL_INTERVAL", PollIntervalDefault),
		FlushDelay:      dur("BATCHSYNTH_FLUSH_DELAY", FlushDelayDefault),
		SweepInterval:   dur("BATCHSYNTH_SWEEP_INTERVAL", SweepIntervalDefault),
		SyncInterval:    dur("BATCHSYNTH_SYNC_INTERVAL", SyncIntervalDefault),
		StaleAfter:      dur("BATCHSYNTH_STALE_AFTER", StaleAfterDefault),
		LeaseDuration:   dur("BATCHSYNTH_LEASE_DURATION", LeaseDurationDefault),
		MaxLines:        int(num("BATCHSYNTH_MAX_LINES", MaxLinesDefault)),
		MaxFileBytes:    num("BATCHSYNTH_MAX_FILE_BYTES", MaxFileBytesDefault),
		TokenBudget:     num("BATCHSYNTH_TOKEN_BUDGET", 0),
		MaxAttempts:     int(num("BATCHSYNTH_MAX_ATTEMPTS", MaxAttemptsDefault)),
		MongoMaxBulk:    int(num("BATCHSYNTH_MONGO_MAX_BULK", 0)),
		Concurrency:     int(num("BATCHSYNTH_CONCURRENCY", ConcurrencyDefault)),
		ShutdownTimeout: dur("BATCHSYNTH_SHUTDOWN_TIMEOUT", ShutdownTimeoutDefault),
		LogFormat:       cmp.Or(getenv("BATCHSYNTH_LOG_FORMAT"), "text"),
		LogLevel:        cmp.Or(getenv("BATCHSYNTH_LOG_LEVEL"), "info"),

		ImmediateMaxWords:    int(num("BATCHSYNTH_IMMEDIATE_MAX_WORDS", ImmediateMaxWordsDefault)),
		ImmediateConcurrency: int(num("BATCHSYNTH_IMMEDIATE_CONCURRENCY", ImmediateConcurrencyDefault)),
		ImmediateRate:        posNum("BATCHSYNTH_IMMEDIATE_RATE", ImmediateRateDefault),
		PeriodicJobs:         getenv("BATCHSYNTH_PERIODIC_JOBS"),
		MonitoringWritable:   flag("BATCHSYNTH_MONITORING_WRITABLE"),
		set:                  set,
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate returns one error per problem, each naming its variable.
func (c Config) Validate() error {
	var errs []error
	if c.MaxLines < 1 || c.MaxLines > MaxLinesDefault {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_MAX_LINES: must be 1..%d (OpenAI's limit), got %d", MaxLinesDefault, c.MaxLines))
	}
	if c.MaxFileBytes < 1024 || c.MaxFileBytes > MaxFileBytesDefault {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_MAX_FILE_BYTES: must be 1024..%d (OpenAI's limit), got %d", MaxFileBytesDefault, c.MaxFileBytes))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_MAX_ATTEMPTS: must be at least 1, got %d", c.MaxAttempts))
	}
	if c.MongoMaxBulk < 0 {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_MONGO_MAX_BULK: must be 0 (by server) or more, got %d", c.MongoMaxBulk))
	}
	if c.ImmediateConcurrency < 1 {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_IMMEDIATE_CONCURRENCY: must be at least 1, got %d", c.ImmediateConcurrency))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("BATCHSYNTH_CONCURRENCY: must be at least 1, got %d", c.Concurrency))
	}
	switch c.Mode {
	case "packed", "per-component", "packed-word":
	default:
		errs = append(errs, fmt.Errorf("BATCHSYNTH_MODE: must be packed, packed-word or per-component, got %q", c.Mode))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("BATCHSYNTH_LOG_FORMAT: must be json or text, got %q", c.LogFormat))
	}
	for name, u := range map[string]string{"REDIS_URL": c.RedisURL, "MONGODB_URI": c.MongoURI, "OPENAI_BASE_URL": c.OpenAIBaseURL} {
		if u == "" {
			continue
		}
		if _, err := url.Parse(u); err != nil {
			// url.Parse errors quote the URL, which may hold a password: say only which variable.
			errs = append(errs, fmt.Errorf("%s: not a valid URL", name))
		}
	}
	return errors.Join(errs...)
}

// Masked returns the settings as name -> value with secrets hidden, for `batchsynth config` and logs.
func (c Config) Masked() [][2]string {
	rows := [][2]string{
		{"REDIS_URL", orEmbedded(MaskURL(c.RedisURL), "(embedded miniredis)")},
		{"MONGODB_URI", orEmbedded(MaskURL(c.MongoURI), "(embedded FerretDB under ./data)")},
		{"MONGODB_DATABASE", c.Database},
		{"OPENAI_API_KEY", orEmbedded(MaskSecret(c.OpenAIKey), "(none: the in-repo emulator answers)")},
		{"OPENAI_BASE_URL", orEmbedded(MaskURL(c.OpenAIBaseURL), "(OpenAI default, or the emulator in dev)")},
		{"BATCHSYNTH_MODEL", c.Model},
		{"BATCHSYNTH_MODE", c.Mode},
		{"BATCHSYNTH_API_TOKEN", orEmbedded(MaskSecret(c.APIToken), "(none: API open, bind to localhost)")},
		{"BATCHSYNTH_HTTP_ADDR", c.HTTPAddr},
		{"BATCHSYNTH_POLL_INTERVAL", c.PollInterval.String()},
		{"BATCHSYNTH_FLUSH_DELAY", c.FlushDelay.String()},
		{"BATCHSYNTH_SWEEP_INTERVAL", c.SweepInterval.String()},
		{"BATCHSYNTH_SYNC_INTERVAL", c.SyncInterval.String()},
		{"BATCHSYNTH_STALE_AFTER", c.StaleAfter.String()},
		{"BATCHSYNTH_LEASE_DURATION", c.LeaseDuration.String()},
		{"BATCHSYNTH_MAX_LINES", strconv.Itoa(c.MaxLines)},
		{"BATCHSYNTH_MAX_FILE_BYTES", strconv.FormatInt(c.MaxFileBytes, 10)},
		{"BATCHSYNTH_TOKEN_BUDGET", strconv.FormatInt(c.TokenBudget, 10)},
		{"BATCHSYNTH_MAX_ATTEMPTS", strconv.Itoa(c.MaxAttempts)},
		{"BATCHSYNTH_MONGO_MAX_BULK", maxBulk(c.MongoMaxBulk)},
		{"BATCHSYNTH_CONCURRENCY", strconv.Itoa(c.Concurrency)},
		{"BATCHSYNTH_SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String()},
		{"BATCHSYNTH_LOG_FORMAT", c.LogFormat},
		{"BATCHSYNTH_LOG_LEVEL", c.LogLevel},
		{"BATCHSYNTH_IMMEDIATE_MAX_WORDS", strconv.Itoa(c.ImmediateMaxWords)},
		{"BATCHSYNTH_IMMEDIATE_CONCURRENCY", strconv.Itoa(c.ImmediateConcurrency)},
		{"BATCHSYNTH_IMMEDIATE_RATE", strconv.FormatFloat(c.ImmediateRate, 'g', -1, 64)},
		{"BATCHSYNTH_PERIODIC_JOBS", orEmbedded(c.PeriodicJobs, "(none)")},
		{"BATCHSYNTH_MONITORING_WRITABLE", strconv.FormatBool(c.MonitoringWritable)},
	}
	return rows
}

func maxBulk(n int) string {
	if n == 0 {
		return "0 (by server)"
	}
	return strconv.Itoa(n)
}

func orEmbedded(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// MaskSecret keeps a hint of which key is set without revealing it. A few characters of a short secret
// shrink its search space too much, so it shows none; a long one keeps only a 3-character prefix (sk-), which
// names the provider and says nothing of the random part.
func MaskSecret(s string) string {
	if s == "" {
		return ""
	}
	r := []rune(s)
	if len(r) < 20 {
		return "****"
	}
	return string(r[:3]) + "****"
}

// secretParamWords mark a query parameter that carries a credential: password, sslpassword,
// tlsCertificateKeyFilePassword, authMechanismProperties (AWS_SESSION_TOKEN:...), api_key, X-Amz-Signature...
// Some harmless ones (authSource) are hidden with them: a settings printout loses little by that.
var secretParamWords = []string{"pass", "pwd", "secret", "token", "key", "credential", "auth", "signature", "session"}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretParamWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// MaskURL hides the credentials of a URL: the userinfo password (redis://:pw@host, mongodb+srv://user:pw@host)
// and every query parameter named like a secret. A URL that does not parse is shown not at all, since where
// its password ends cannot be told.
func MaskURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	// An opaque URL is no URL of ours: "user:pw@host" without a scheme parses as scheme "user" with the
	// password in the opaque part.
	if err != nil || u.Opaque != "" {
		return "(unparseable, hidden)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	u.RawQuery = maskQuery(u.RawQuery)
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "xxxxx", ""
	}
	return u.String()
}

// maskQuery replaces the value of each secret parameter of a raw query and keeps the rest as written. It
// splits at ';' as well as '&': url.Values drops a pair holding ';', but an older client may read
// "ssl=true;password=x" as two parameters, so the second must be masked too.
func maskQuery(raw string) string {
	var b strings.Builder
	for raw != "" {
		pair, sep := raw, ""
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			pair, sep, raw = raw[:i], raw[i:i+1], raw[i+1:]
		} else {
			raw = ""
		}
		name, _, hasValue := strings.Cut(pair, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if hasValue && secretParam(decoded) {
			pair = name + "=xxxxx"
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
	return b.String()
}
