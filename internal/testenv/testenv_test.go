package testenv

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/emulator"
)

func TestMain(m *testing.M) { Main(m) }

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	url := Redis(t)
	if !strings.HasPrefix(url, "redis://127.0.0.1:") || !strings.HasSuffix(url, "/0") {
		t.Fatalf("Redis URL = %q; want redis://127.0.0.1:PORT/0", url)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })

	if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	// asynq archives with ZRANGE ... BYSCORE, which needs Redis >= 6.2.
	if err := rdb.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "a"}).Err(); err != nil {
		t.Fatalf("ZADD: %v", err)
	}
	if err := rdb.Do(ctx, "ZRANGE", "z", "-inf", "+inf", "BYSCORE").Err(); err != nil {
		t.Fatalf("ZRANGE BYSCORE (Redis >= 6.2): %v", err)
	}
	if save, err := rdb.ConfigGet(ctx, "save").Result(); err != nil || save["save"] != "" {
		t.Fatalf("CONFIG GET save = %v, %v; want persistence off", save, err)
	}
}

func TestRedisIsolated(t *testing.T) {
	t.Parallel()
	a, b := Redis(t), Redis(t)
	if a == b {
		t.Fatalf("two Redis calls returned the same server %s", a)
	}
}

func TestMongo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	client, name := Mongo(t)
	coll := client.Database(name).Collection("entries")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "word", Value: "bank"}}); err != nil {
		t.Fatalf("InsertOne: %v", err)
	}
	var got struct {
		Word string `bson:"word"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "word", Value: "bank"}}).Decode(&got); err != nil {
		t.Fatalf("FindOne: %v", err)
	}
	if got.Word != "bank" {
		t.Fatalf("FindOne word = %q; want bank", got.Word)
	}
}

func TestMongoDropsDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var name string
	t.Run("Inner", func(t *testing.T) {
		client, n := Mongo(t)
		name = n
		if _, err := client.Database(n).Collection("c").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
			t.Fatalf("InsertOne: %v", err)
		}
	})

	client, _ := Mongo(t)
	names, err := client.ListDatabaseNames(ctx, bson.D{{Key: "name", Value: name}})
	if err != nil {
		t.Fatalf("ListDatabaseNames: %v", err)
	}
	if len(names) != 0 {
		t.Fatalf("database %q still exists after its test ended", name)
	}
}

func TestDBName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9]([a-z0-9_]*[a-z0-9])?_[0-9a-f]{6}$`)

	tests := []struct {
		name     string
		wantBase string
	}{
		{name: "Simple", wantBase: "testdbname_simple"},
		{name: "Spaces and UPPER/ü--x", wantBase: "testdbname_spaces_and_upper_x"},
		{name: "AVeryLongSubtestNameThatGoesOnAndOnAndOnAndOn", wantBase: "testdbname_averylongsubtestnameth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := DBName(t)
			if !valid.MatchString(got) || len(got) > dbNameMax {
				t.Fatalf("DBName = %q; want [a-z0-9_] of at most %d bytes with a hex suffix", got, dbNameMax)
			}
			if base := got[:len(got)-dbNameSuffixLen-1]; base != tt.wantBase {
				t.Fatalf("DBName base = %q; want %q", base, tt.wantBase)
			}
			if again := DBName(t); again == got {
				t.Fatalf("DBName returned %q twice; want a fresh suffix each call", got)
			}
		})
	}
}

func TestRedactURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"mongodb://127.0.0.1:27017/":            "mongodb://127.0.0.1:27017/",
		"mongodb://user:secret@host:27017/db":   "mongodb://user:xxxxx@host:27017/db",
		"postgres://postgres@127.0.0.1:5432/pg": "postgres://postgres@127.0.0.1:5432/pg",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestWaitTCP(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	if err := WaitTCP(addr, 100*time.Millisecond); err == nil {
		t.Fatalf("WaitTCP(%s) on a closed port = nil; want an error", addr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := WaitTCP(l.Addr().String(), time.Second); err != nil {
		t.Fatalf("WaitTCP on a listening port: %v", err)
	}
}

func TestEmulator(t *testing.T) {
	t.Parallel()
	srv, base := Emulator(t, emulator.Config{})
	if srv == nil || !strings.HasSuffix(base, "/v1/") {
		t.Fatalf("Emulator = %v, %q; want a server and a base URL ending in /v1/", srv, base)
	}
	res, err := http.Get(base + "batches")
	if err != nil {
		t.Fatalf("GET %sbatches: %v", base, err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %sbatches: status %d; want 200", base, res.StatusCode)
	}
}
