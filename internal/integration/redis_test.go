package integration

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/chaos"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testfleet"
	"github.com/floridify/batchsynth/scheduler"
)

// waitInFlight waits until at least one batch document is submitted (created at OpenAI, being polled).
func waitInFlight(t *testing.T, f *testfleet.Fleet) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := f.Store.Collection(store.CollBatches).CountDocuments(context.Background(), bson.M{"state": store.BatchSubmitted})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch got submitted within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisFlushMidRun wipes Redis (FLUSHALL on the test's redis-server) while batches are in flight: every
// queued task, retry, unique lock, the build lock and the scheduler lease are gone. The sweeps rebuild what
// is in flight from MongoDB (polls, applies, builds) and the job still finishes, with nothing lost and
// nothing applied or paid for twice.
func TestRedisFlushMidRun(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{ValidatingFor: time.Second, InProgressFor: 3 * time.Second}, nil)
	job := submit(t, f, faultWords)
	waitInFlight(t, f)
	opt, err := redis.ParseURL(f.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if left, _ := rc.DBSize(ctx).Result(); keys == 0 || left > keys/2 {
		t.Fatalf("FLUSHALL: %d keys before, %d after", keys, left)
	}
	pending, _ := f.Store.StateCounts(ctx, bson.M{"job_ids": job.ID})
	t.Logf("flushed %d Redis keys with requests %v", keys, pending)
	p := waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	allSucceeded(t, p)
	auditFleet(t, f, chaos.AuditOptions{})
}

// TestSchedulerStandbyTakeover runs two schedulers. The active one dies (its Redis connections cut, so it
// neither renews nor releases the lease); the standby takes the lease within one lease period
// (BATCHSYNTH_LEASE_DURATION), scheduler.Holder names it, and it polls the batches in flight to the end.
func TestSchedulerStandbyTakeover(t *testing.T) {
	parallel(t)
	f := faultFleet(t, emulator.Config{ValidatingFor: time.Second, InProgressFor: 3 * time.Second}, nil,
		func(o *testfleet.Options) { o.Schedulers = 2 })
	ctx := context.Background()
	byID := map[string]*testfleet.Role{}
	for _, s := range f.Schedulers {
		byID[s.ID()] = s
	}
	var active *testfleet.Role
	deadline := time.Now().Add(30 * time.Second)
	for active == nil {
		if time.Now().After(deadline) {
			t.Fatal("no scheduler took the lease")
		}
		active = byID[scheduler.Holder(ctx, f.Redis)]
		time.Sleep(50 * time.Millisecond)
	}
	job := submit(t, f, faultWords)
	waitInFlight(t, f)

	active.Crash()
	died := time.Now()
	var standby string
	for standby == "" || standby == active.ID() {
		if time.Since(died) > 3*f.Config.LeaseDuration {
			t.Fatalf("the standby did not take over within %s (holder %q)", 3*f.Config.LeaseDuration, standby)
		}
		time.Sleep(20 * time.Millisecond)
		standby = scheduler.Holder(ctx, f.Redis)
	}
	took := time.Since(died)
	if byID[standby] == nil {
		t.Fatalf("lease held by %q, which is neither scheduler", standby)
	}
	// 20 ms of slack: the sampling interval of this loop.
	if took > f.Config.LeaseDuration+20*time.Millisecond {
		t.Fatalf("the standby took over %s after the active scheduler died; want within one lease period (%s)", took, f.Config.LeaseDuration)
	}
	t.Logf("standby %s took over %s after %s died (lease period %s)", standby, took.Round(time.Millisecond), active.ID(), f.Config.LeaseDuration)
	p := waitFinished(t, f.Deps, job.ID, 2*time.Minute)
	allSucceeded(t, p)
	auditFleet(t, f, chaos.AuditOptions{})
}
