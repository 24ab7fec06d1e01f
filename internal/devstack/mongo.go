package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// FerretDBLogLevelDefault is the lowest level of FerretDB's own log records
// that reach the logger given to StartMongo. FerretDB v1 logs every accepted
// and closed connection at Info, and at Warn it dumps the full request and
// response of every command answered with ok:0, which includes the
// endSessions it does not implement (sent by every client Disconnect).
// Error still shows what matters: dropped connections and handler panics.
const FerretDBLogLevelDefault = slog.LevelError

// mongoReadyTimeout bounds the wait for the first answered ping. FerretDB
// binds its listener in ferretdb.New, but the handler only answers once Run
// has started, and the first SQLite open can take a moment on a cold disk.
const mongoReadyTimeout = 30 * time.Second

// ferretNewMu serialises ferretdb.New, which writes a package-level variable
// (version.Get().Package = "embedded") unguarded: two servers starting at once,
// as parallel tests do, are a data race.
var ferretNewMu sync.Mutex

// Mongo is an embedded FerretDB serving the MongoDB wire protocol.
type Mongo struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	proxy  *serialProxy
}

// StartMongo runs an embedded FerretDB with the SQLite backend, keeping its
// data under dir (created if missing), on a free port of 127.0.0.1. It
// returns once the server answers a ping.
//
// ctx bounds startup only; the server runs until Close. That lets `dev` stop
// its workers first on a signal (asynq writes in-flight tasks back on
// shutdown, and handlers may still be saving state) and close the stores last.
//
// logger receives FerretDB's records at FerretDBLogLevelDefault and above,
// tagged component=ferretdb; nil means slog.Default().
func StartMongo(ctx context.Context, dir string, logger *slog.Logger) (*Mongo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("error resolving FerretDB data dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("error creating FerretDB data dir: %w", err)
	}
	// FerretDB unescapes the URL's path and hands it to SQLite as a URI again,
	// where "?" starts the query and "#" the fragment: the files would land
	// outside dir under a cut-off name. Other characters, spaces included,
	// survive the round trip once escaped here.
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("error using FerretDB data dir %q: SQLite cannot open paths containing '?' or '#'", abs)
	}
	// _txlock=immediate: with SQLite's default deferred transactions, two writers that both started reading
	// deadlock on the upgrade to a write lock, and FerretDB then stops answering altogether. Immediate
	// transactions queue on the busy timeout instead.
	sqliteURL := &url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/", RawQuery: "_txlock=immediate"}
	return startFerretDB(ctx, &ferretdb.Config{
		Handler:   "sqlite",
		SQLiteURL: sqliteURL.String(),
	}, logger, 1)
}

// StartMongoPostgres runs an embedded FerretDB with the PostgreSQL backend,
// for runs too large for SQLite. postgresURL names a database FerretDB may
// create its schemas in, e.g. postgres://postgres@127.0.0.1:5432/ferretdb.
func StartMongoPostgres(ctx context.Context, postgresURL string, logger *slog.Logger) (*Mongo, error) {
	if postgresURL == "" {
		return nil, errors.New("error starting FerretDB: empty PostgreSQL URL")
	}
	u, err := url.Parse(postgresURL)
	if err != nil {
		return nil, fmt.Errorf("error reading the PostgreSQL URL: %w", err)
	}
	q := u.Query()
	if !q.Has("pool_max_conns") {
		q.Set("pool_max_conns", strconv.Itoa(PostgresPoolDefault))
		u.RawQuery = q.Encode()
	}
	return startFerretDB(ctx, &ferretdb.Config{
		Handler:       "postgresql",
		PostgreSQLURL: u.String(),
	}, logger, PostgresLanes)
}

// PostgresLanes is how many commands FerretDB with its PostgreSQL backend runs at once (see serialProxy):
// with Store.MaxBulk at FerretDBPostgresMaxBulk, at most PostgresLanes*(FerretDBPostgresMaxBulk+1) backend
// connections, under PostgresPoolDefault with room for open cursors.
const PostgresLanes = 4

// FerretDBPostgresMaxBulk is the most statements per command this package's PostgreSQL-backed FerretDB
// should get (Store.MaxBulk).
const FerretDBPostgresMaxBulk = 16

// PostgresPoolDefault is FerretDB's pool_max_conns unless the URL sets one (FerretDB's own default is 50);
// PostgreSQL's default max_connections is 100.
const PostgresPoolDefault = 80

// CommandStats returns the time the server spent per kind of command since it started, in no particular
// order (bench.ServerTime ranks them).
func (m *Mongo) CommandStats() []CommandStat { return m.proxy.stats.snapshot() }

func startFerretDB(ctx context.Context, cfg *ferretdb.Config, logger *slog.Logger, lanes int) (*Mongo, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg.Listener = ferretdb.ListenerConfig{TCP: "127.0.0.1:0"}
	cfg.Logger = slog.New(&minLevelHandler{
		min:  FerretDBLogLevelDefault,
		next: logger.Handler(),
	}).With(slog.String("component", "ferretdb"))

	ferretNewMu.Lock()
	f, err := ferretdb.New(cfg)
	ferretNewMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("error creating FerretDB (%s backend): %w", cfg.Handler, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	m := &Mongo{
		uri:    f.MongoDBURI(),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		// Run only returns nil; failures surface as the ping below failing.
		_ = f.Run(runCtx)
	}()
	if err := waitMongo(ctx, m.uri); err != nil {
		m.Close()
		return nil, fmt.Errorf("error waiting for FerretDB (%s backend) at %s: %w", cfg.Handler, m.uri, err)
	}
	u, err := url.Parse(m.uri)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("error reading FerretDB's URI: %w", err)
	}
	proxy, err := startSerialProxy(u.Host, lanes)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.proxy = proxy
	u.Host = proxy.addr()
	m.uri = u.String()
	return m, nil
}

func waitMongo(ctx context.Context, uri string) error {
	ctx, cancel := context.WithTimeout(ctx, mongoReadyTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	return client.Ping(ctx, readpref.Primary())
}

// URI returns a mongodb:// URI for the server.
func (m *Mongo) URI() string {
	return m.uri
}

// Close stops the server, closing its client connections and its backend, and
// waits for it to finish. A second Close is harmless.
func (m *Mongo) Close() {
	m.once.Do(func() {
		if m.proxy != nil {
			m.proxy.close()
		}
		m.cancel()
		<-m.done
	})
}

// minLevelHandler drops records below min before they reach next, whatever
// level next itself is set to.
type minLevelHandler struct {
	min  slog.Level
	next slog.Handler
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if cancelledQuery(r) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// cancelledQuery reports FerretDB's PostgreSQL backend logging, as an error, a query it cancelled itself: it
// does so whenever a find stops early (a limit reached, a cursor closed), which is not a failure.
func cancelledQuery(r slog.Record) bool {
	if r.Message != "Query" {
		return false
	}
	cancelled := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), context.Canceled.Error()) {
			cancelled = true
			return false
		}
		return true
	})
	return cancelled
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{min: h.min, next: h.next.WithAttrs(attrs)}
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{min: h.min, next: h.next.WithGroup(name)}
}
