// Command mongoserver runs the embedded FerretDB (SQLite backend) of internal/devstack as a process of its
// own. Tests built with -race start it (see chaos.StartMongo): FerretDB and its pure-Go SQLite run many times
// slower under the race detector, a race inside them is not ours to find, and a separate process is also what
// the chaos test's child processes need. It prints the server's URI on stdout, serves until its stdin closes
// (the test process ended, however it ended) or it gets SIGTERM/SIGINT, then removes its data.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/floridify/batchsynth/internal/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	dir, err := os.MkdirTemp("", "batchsynth-ferretdb-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongoserver:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	m, err := devstack.StartMongo(sctx, dir, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongoserver:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Println(m.URI())
	<-ctx.Done()
	m.Close()
}
