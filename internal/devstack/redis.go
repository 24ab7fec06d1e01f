package devstack

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// Redis is an in-process Redis server. It is safe for concurrent use.
type Redis struct {
	mr *miniredis.Miniredis
}

// StartRedis runs an in-process Redis (miniredis) on a free port of
// 127.0.0.1. ctx bounds startup only; the server runs until Close, because
// asynq writes in-flight tasks back to Redis while it shuts down, so Redis
// must outlive the workers.
func StartRedis(ctx context.Context) (*Redis, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mr := miniredis.NewMiniRedis()
	// By default miniredis TTLs only move when FastForward is called, so
	// asynq's Unique locks and lease keys would never expire. ClockTTL makes
	// every database access first fast-forward by the wall time elapsed since
	// the previous access, which is what a ticker calling FastForward would do,
	// without a goroutine and without the ticker's lag.
	mr.ClockTTL(true)
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("error starting miniredis: %w", err)
	}
	return &Redis{mr: mr}, nil
}

// URL returns the server's address as a redis:// URL selecting DB 0.
func (r *Redis) URL() string {
	return "redis://" + r.mr.Addr() + "/0"
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string {
	return r.mr.Addr()
}

// Close stops the server and drops its data. A second Close is harmless.
func (r *Redis) Close() {
	r.mr.Close()
}
