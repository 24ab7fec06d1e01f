package testenv

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/floridify/batchsynth/internal/devstack"
)

// PostgresURLDefault is the database FerretDB's PostgreSQL backend uses when
// BATCHSYNTH_TEST_POSTGRES_URL is unset: the local server with trust auth
// that the project's machines run.
const PostgresURLDefault = "postgres://postgres@127.0.0.1:5432/postgres"

const (
	mongoStartTimeout = 2 * time.Minute
	mongoOpTimeout    = 30 * time.Second

	// dbNameMax keeps names short enough for every server the tests may meet:
	// MongoDB allows 63 bytes, FerretDB's PostgreSQL backend turns names into
	// schema names (63 bytes) after mangling, and a shorter name reads better
	// in server logs.
	dbNameMax       = 40
	dbNameSuffixLen = 6 // hex characters
)

// shared is the one server of this test binary, started on first use.
var shared struct {
	once sync.Once
	uri  string
	err  error

	mu      sync.Mutex
	ferret  *devstack.Mongo
	dataDir string
}

// Mongo returns a client connected to the test server and the name of a
// database of this test's own, which is dropped (and the client disconnected)
// when the test ends. The name comes from t.Name(), so leftovers are easy to
// trace, plus a random suffix so reruns and parallel tests never collide.
func Mongo(t testing.TB) (*mongo.Client, string) {
	t.Helper()
	uri := MongoURI(t)

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("testenv: error connecting to MongoDB at %s: %v", redactURI(uri), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
	defer cancel()
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.Background())
		t.Fatalf("testenv: MongoDB at %s does not answer (unset MONGODB_URI to use an embedded FerretDB): %v", redactURI(uri), err)
	}

	name := DBName(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
		defer cancel()
		if err := client.Database(name).Drop(ctx); err != nil {
			t.Errorf("testenv: error dropping test database %q: %v", name, err)
		}
		if err := client.Disconnect(ctx); err != nil {
			t.Errorf("testenv: error disconnecting from MongoDB: %v", err)
		}
	})
	return client, name
}

// MongoURI returns the URI of the server [Mongo] uses: MONGODB_URI when set,
// otherwise this test binary's embedded FerretDB, started on first call.
// Tests that connect by URI must still keep to a database of their own.
func MongoURI(t testing.TB) string {
	t.Helper()
	if uris := strings.Fields(os.Getenv(MongoURIsEnv)); len(uris) > 1 {
		return pool.pick(t, uris)
	}
	shared.once.Do(func() { shared.uri, shared.err = startSharedMongo() })
	if shared.err != nil {
		t.Fatalf("testenv: %v", shared.err)
	}
	return shared.uri
}

// MongoURIsEnv lists several servers (separated by spaces) among which MongoURI spreads the top-level tests
// of a test binary, so that tests running in parallel do not queue on one server (internal/chaos starts
// them). Every subtest gets its top-level test's server: a test's fleet and its checks read one database.
const MongoURIsEnv = "BATCHSYNTH_TEST_MONGODB_URIS"

// serverPool gives each top-level test one of several servers, in turn.
type serverPool struct {
	mu   sync.Mutex
	next int
	of   map[string]string // top-level test name -> server
}

var pool serverPool

func (p *serverPool) pick(t testing.TB, uris []string) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.of == nil {
		p.of = map[string]string{}
	}
	if u, ok := p.of[top]; ok {
		return u
	}
	u := uris[p.next%len(uris)]
	p.next++
	p.of[top] = u
	return u
}

func startSharedMongo() (string, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return uri, nil
	}

	// FerretDB's own records go to stderr only at Error, so a failing test's
	// output is not buried under connection chatter.
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), mongoStartTimeout)
	defer cancel()

	shared.mu.Lock()
	defer shared.mu.Unlock()

	switch backend := cmp.Or(os.Getenv("BATCHSYNTH_TEST_FERRETDB_BACKEND"), "sqlite"); backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "batchsynth-ferretdb-*")
		if err != nil {
			return "", fmt.Errorf("error creating FerretDB data dir: %w", err)
		}
		f, err := devstack.StartMongo(ctx, dir, logger)
		if err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("error starting embedded FerretDB (SQLite backend): %w", err)
		}
		shared.ferret, shared.dataDir = f, dir
	case "postgresql":
		pgURL := cmp.Or(os.Getenv("BATCHSYNTH_TEST_POSTGRES_URL"), PostgresURLDefault)
		f, err := devstack.StartMongoPostgres(ctx, pgURL, logger)
		if err != nil {
			return "", fmt.Errorf("error starting embedded FerretDB (PostgreSQL backend at %s; set BATCHSYNTH_TEST_POSTGRES_URL, or unset BATCHSYNTH_TEST_FERRETDB_BACKEND for SQLite): %w",
				redactURI(pgURL), err)
		}
		shared.ferret = f
	default:
		return "", fmt.Errorf("BATCHSYNTH_TEST_FERRETDB_BACKEND=%q: want sqlite or postgresql", backend)
	}
	return shared.ferret.URI(), nil
}

// stopSharedMongo stops the embedded FerretDB, if one was started, and removes
// its data.
func stopSharedMongo() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.ferret != nil {
		shared.ferret.Close()
		shared.ferret = nil
	}
	if shared.dataDir != "" {
		dir := shared.dataDir
		shared.dataDir = ""
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("error removing FerretDB data dir: %w", err)
		}
	}
	return nil
}

// DBName returns a database name for t: t.Name() lowercased, with runs of
// anything but [a-z0-9] turned into "_", cut so the whole name stays within
// 40 bytes, then "_" and a random hex suffix.
func DBName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	base := b.String()
	if maxBase := dbNameMax - 1 - dbNameSuffixLen; len(base) > maxBase {
		base = base[:maxBase]
	}
	base = strings.Trim(base, "_")
	if base == "" {
		base = "test"
	}
	suffix := make([]byte, dbNameSuffixLen/2)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails.
	return base + "_" + hex.EncodeToString(suffix)
}

// redactURI hides a password in a server URI before it reaches test output.
func redactURI(uri string) string {
	at := strings.LastIndex(uri, "@")
	scheme := strings.Index(uri, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return uri
	}
	userinfo := uri[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return uri[:scheme+3] + user + ":xxxxx" + uri[at:]
	}
	return uri
}

// MongoCommandStats returns the time the embedded FerretDB spent per kind of command since it started, or
// nil when the tests use MONGODB_URI (or no server has started).
func MongoCommandStats() []devstack.CommandStat {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.ferret == nil {
		return nil
	}
	return shared.ferret.CommandStats()
}
