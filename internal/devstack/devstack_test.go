package devstack

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestStartRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	r, err := StartRedis(ctx)
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	t.Cleanup(r.Close)

	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", r.URL(), err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })

	t.Run("EvalLikeAsynq", func(t *testing.T) {
		// The shape of asynq's enqueue-unique script: SET NX with a TTL as a
		// lock, then HSET and LPUSH, answering 0 when the lock is taken.
		script := redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2]) == false then
  return 0
end
redis.call("HSET", KEYS[2], "msg", ARGV[3], "state", "pending")
redis.call("LPUSH", KEYS[3], ARGV[1])
return 1`)
		keys := []string{"asynq:{q}:unique:x", "asynq:{q}:t:1", "asynq:{q}:pending"}
		got, err := script.Run(ctx, rdb, keys, "1", 60, "payload").Int()
		if err != nil || got != 1 {
			t.Fatalf("first EVAL = %d, %v; want 1, nil", got, err)
		}
		got, err = script.Run(ctx, rdb, keys, "1", 60, "payload").Int()
		if err != nil || got != 0 {
			t.Fatalf("second EVAL = %d, %v; want 0 (lock held), nil", got, err)
		}
		if n, err := rdb.LLen(ctx, keys[2]).Result(); err != nil || n != 1 {
			t.Fatalf("LLEN pending = %d, %v; want 1", n, err)
		}
	})

	t.Run("TTLFollowsWallClock", func(t *testing.T) {
		if err := rdb.Set(ctx, "lock", "1", 150*time.Millisecond).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := rdb.Exists(ctx, "lock").Result()
			if err != nil {
				t.Fatalf("EXISTS: %v", err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("key with a 150ms TTL still exists after 5s: miniredis TTLs are not following the clock")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestStartMongo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	start := time.Now()
	// The space checks that the data dir reaches FerretDB escaped.
	dir := filepath.Join(t.TempDir(), "data dir")
	m, err := StartMongo(ctx, dir, logger)
	if err != nil {
		t.Fatalf("StartMongo: %v", err)
	}
	t.Cleanup(m.Close)
	t.Logf("FerretDB (SQLite) answered a ping %v after start", time.Since(start))

	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatalf("Connect(%q): %v", m.URI(), err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	coll := client.Database("devstack").Collection("entries")

	t.Run("UniqueIndex", func(t *testing.T) {
		_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "word", Value: 1}},
			Options: options.Index().SetUnique(true),
		})
		if err != nil {
			t.Fatalf("CreateOne index: %v", err)
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "word", Value: "bank"}, {Key: "n", Value: 1}}); err != nil {
			t.Fatalf("InsertOne: %v", err)
		}
		_, err = coll.InsertOne(ctx, bson.D{{Key: "word", Value: "bank"}})
		if !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("second InsertOne error = %v; want a duplicate-key error", err)
		}
	})

	t.Run("FindOneAndUpdate", func(t *testing.T) {
		var doc struct {
			Word string `bson:"word"`
			N    int    `bson:"n"`
		}
		err := coll.FindOneAndUpdate(ctx,
			bson.D{{Key: "word", Value: "bank"}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After),
		).Decode(&doc)
		if err != nil {
			t.Fatalf("FindOneAndUpdate: %v", err)
		}
		if doc.Word != "bank" || doc.N != 2 {
			t.Fatalf("FindOneAndUpdate returned %+v; want word=bank n=2", doc)
		}
	})

	t.Run("BulkWriteUpserts", func(t *testing.T) {
		words := []string{"bank", "run", "light", "fair"}
		models := make([]mongo.WriteModel, 0, len(words))
		for _, w := range words {
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "word", Value: w}}).
				SetUpdate(bson.D{
					{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: true}}},
					{Key: "$addToSet", Value: bson.D{{Key: "tags", Value: bson.D{{Key: "$each", Value: bson.A{"a", "b"}}}}}},
				}).
				SetUpsert(true))
		}
		res, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		if err != nil {
			t.Fatalf("BulkWrite: %v", err)
		}
		if res.UpsertedCount != 3 || res.MatchedCount != 1 {
			t.Fatalf("BulkWrite upserted %d, matched %d; want 3, 1", res.UpsertedCount, res.MatchedCount)
		}
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil || n != 4 {
			t.Fatalf("CountDocuments = %d, %v; want 4", n, err)
		}
	})

	t.Run("CommandStats", func(t *testing.T) {
		// The proxy counts each kind of command and the write statements it carries, whether the driver puts
		// them in the command document or, as for bulk writes, in a document sequence.
		stats := func() map[string]CommandStat {
			out := map[string]CommandStat{}
			for _, c := range m.CommandStats() {
				out[c.Command] = c
			}
			return out
		}
		before := stats()
		if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "word", Value: "x1"}}, bson.D{{Key: "word", Value: "x2"}}, bson.D{{Key: "word", Value: "x3"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := coll.UpdateMany(ctx, bson.D{{Key: "word", Value: "x1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 5}}}}); err != nil {
			t.Fatal(err)
		}
		after := stats()
		ins, upd := after["insert entries"], after["update entries"]
		if d := ins.Count - before["insert entries"].Count; d != 1 {
			t.Errorf("insert commands counted: %d, want 1", d)
		}
		if d := ins.Statements - before["insert entries"].Statements; d != 3 {
			t.Errorf("insert statements counted: %d, want 3", d)
		}
		if d := upd.Statements - before["update entries"].Statements; d != 1 {
			t.Errorf("update statements counted: %d, want 1", d)
		}
		if ins.Total <= 0 {
			t.Errorf("no server time recorded for inserts: %+v", ins)
		}
	})

	if _, err := os.Stat(filepath.Join(dir, "devstack.sqlite")); err != nil {
		t.Errorf("FerretDB did not keep its data under %s: %v", dir, err)
	}

	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		if !strings.Contains(line, "level=ERROR") {
			t.Errorf("FerretDB logged below %v: %s", FerretDBLogLevelDefault, line)
		}
	}
}

func TestStartMongoRejectsUnsafeDir(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a#1", "b?x"} {
		dir := filepath.Join(t.TempDir(), name)
		if m, err := StartMongo(context.Background(), dir, nil); err == nil {
			m.Close()
			t.Errorf("StartMongo(%q) = nil error; want a refusal, since SQLite would write elsewhere", dir)
		}
	}
}

func TestStartMongoCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := StartMongo(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("StartMongo with a cancelled ctx: err = %v; want context.Canceled", err)
	}
}

// syncBuffer lets FerretDB's connection goroutines log while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestCancelledQueryIsDropped(t *testing.T) {
	var buf syncBuffer
	h := &minLevelHandler{min: slog.LevelError, next: slog.NewTextHandler(&buf, nil)}
	log := slog.New(h)
	log.Error("Query", "sql", "SELECT 1", "err", "context canceled")
	if buf.String() != "" {
		t.Fatalf("a query FerretDB cancelled itself was logged: %s", buf.String())
	}
	log.Error("Query", "sql", "SELECT 1", "err", "connection refused")
	log.Error("other", "err", "context canceled")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("want the 2 other errors logged, got %d lines: %s", got, buf.String())
	}
}
