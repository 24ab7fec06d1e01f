package pipeline

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// buildLockTTL bounds how long a dead builder blocks others; a live one renews it.
const buildLockTTL = 30 * time.Second

var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

var renewLockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

// lockModel lets one builder at a time work on a model. MongoDB's compare-and-set claims are correct without
// it, but FerretDB (the embedded default) evaluates a multi-document update's filter before writing without
// re-checking it, so two racing claims could both take the same requests. The lock also saves builders from
// splitting one backlog into many small batches. It returns an unlock func, or nil if another builder holds it.
func (d *Deps) lockModel(ctx context.Context, model string) func() {
	if d.Redis == nil {
		return func() {}
	}
	key := buildLockKey(model)
	token := NewID("lock")
	ok, err := d.Redis.SetNX(ctx, key, token, buildLockTTL).Result()
	if err != nil || !ok {
		return nil
	}
	return d.holdLock(ctx, key, token, buildLockTTL)
}

// holdLock keeps the Redis lock key (taken with token) alive until the returned unlock is called, which
// releases it if it is still ours.
func (d *Deps) holdLock(ctx context.Context, key, token string, ttl time.Duration) func() {
	stopRenewing := renewEvery(ctx, ttl/3, func(rctx context.Context) bool {
		_ = renewLockScript.Run(rctx, d.Redis, []string{key}, token, ttl.Milliseconds()).Err()
		return true
	})
	return func() {
		stopRenewing()
		_ = unlockScript.Run(context.WithoutCancel(ctx), d.Redis, []string{key}, token).Err()
	}
}

// BuildRunning reports whether a builder holds model's lock now (false when it cannot tell).
func (d *Deps) BuildRunning(ctx context.Context, model string) bool {
	if d.Redis == nil {
		return false
	}
	n, err := d.Redis.Exists(ctx, buildLockKey(model)).Result()
	return err == nil && n > 0
}

func buildLockKey(model string) string { return "batchsynth:build:" + model }

// renewEvery calls renew every period, with a context that outlives ctx's cancellation, until renew reports
// false or the returned stop is called. stop waits for a renewal in progress to end. It serves every lease
// batchsynth keeps alive while it works (the build lock in Redis, batch documents' leases in MongoDB).
func renewEvery(ctx context.Context, period time.Duration, renew func(context.Context) bool) (stop func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if !renew(rctx) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
