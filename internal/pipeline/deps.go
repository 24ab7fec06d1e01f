package pipeline

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/openaibatch"
	"github.com/floridify/batchsynth/internal/store"
)

// Deps are what the steps share.
type Deps struct {
	Store  *store.Store
	OpenAI *openaibatch.Client
	Queue  *asynq.Client
	// Redis is the same server as the queue's, for short locks.
	Redis  redis.UniversalClient
	Config config.Config
	Log    *slog.Logger
	// Owner names this process in leases.
	Owner string
	Now   func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Deps) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

func (d *Deps) owner() string {
	if d.Owner != "" {
		return d.Owner
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a time-ordered random id with a prefix ("job", "sb").
func NewID(prefix string) string {
	var b [14]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
