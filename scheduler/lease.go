package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// LeaseKey is the Redis key holding the active scheduler's id.
const LeaseKey = "batchsynth:scheduler:leader"

// renewScript extends the lease only if we still hold it.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes the lease only if we hold it.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Lease is a leadership lease: whoever holds the key is the active scheduler. A standby takes over within
// one lease period after the holder stops renewing.
type Lease struct {
	RDB      redis.UniversalClient
	ID       string
	Duration time.Duration
}

// TryAcquire takes the lease if it is free, or renews it if we hold it.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	ok, err := l.RDB.SetNX(ctx, LeaseKey, l.ID, l.Duration).Result()
	if err != nil {
		return false, err
	}
	if ok {
		return true, nil
	}
	return l.Renew(ctx)
}

// Renew extends the lease if we hold it.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.RDB, []string{LeaseKey}, l.ID, l.Duration.Milliseconds()).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	return n == 1, nil
}

// Release gives the lease up so a standby takes over at once.
func (l *Lease) Release(ctx context.Context) {
	_ = releaseScript.Run(ctx, l.RDB, []string{LeaseKey}, l.ID).Err()
}

// Holder returns the current holder's id ("" if none).
func Holder(ctx context.Context, rdb redis.UniversalClient) string {
	s, _ := rdb.Get(ctx, LeaseKey).Result()
	return s
}
