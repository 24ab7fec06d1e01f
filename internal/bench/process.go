package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
)

// RoleEnv names the role a child process of a test binary plays (see ChildMain).
const RoleEnv = "BATCHSYNTH_BENCH_ROLE"

// Roles a child can play.
const (
	RoleEmulator  = "emulator"  // the Batch API emulator (instant, fault-free) on a free port
	RoleWorker    = "worker"    // `batchsynth worker`: fleet.Open from the environment, then RunWorker
	RoleScheduler = "scheduler" // `batchsynth scheduler`
)

// ChildMain runs this process as a child role when RoleEnv says so, and exits; otherwise it returns. Call
// it first in TestMain: the test binary then serves as the batchsynth binary for multi-process benchmarks,
// with no separate build. A child prints "ready <address or id>" on stdout once it serves, and stops on
// SIGTERM (workers hand back in-flight tasks as `batchsynth worker` does).
func ChildMain() {
	role := os.Getenv(RoleEnv)
	if role == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go orphanWatch(stop)
	var err error
	switch role {
	case RoleEmulator:
		err = runEmulatorChild(ctx)
	case RoleWorker, RoleScheduler:
		err = runFleetChild(ctx, role)
	default:
		err = fmt.Errorf("unknown %s %q", RoleEnv, role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// orphanWatch stops a child whose parent died (Pdeathsig covers most cases, not all): it asks it to stop
// (stop), then exits outright 30 s later.
func orphanWatch(stop func()) {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			stop()
			time.Sleep(30 * time.Second)
			os.Exit(2)
		}
	}
}

func runEmulatorChild(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emulator.New(emulator.Config{Seed: 1})}
	fmt.Printf("ready %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func runFleetChild(ctx context.Context, role string) error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return err
	}
	f, err := fleet.Open(ctx, cfg, Logger().With("pid", os.Getpid()))
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Store.FerretDB {
		f.Store.MaxBulk = FerretDBMaxBulk()
	}
	fmt.Printf("ready %s\n", f.ID)
	if role == RoleWorker {
		return f.RunWorker(ctx)
	}
	return f.RunScheduler(ctx)
}

// Child is a running child process.
type Child struct {
	Cmd   *exec.Cmd
	Ready string // what the child printed after "ready "
	done  chan struct{}
	once  sync.Once
}

// StartChild starts this test binary again in role, with env added to the environment, waits until it is
// ready and stops it (SIGTERM, then SIGKILL after 30 s) when tb ends.
func StartChild(tb testing.TB, role string, env ...string) *Child {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+role), env...)
	// A child must not outlive this process (a test binary killed by its -timeout leaves no orphan).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &Child{Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(c.Stop)
	ready := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready ") {
			tb.Fatalf("bench: child %s did not start: %q", role, line)
		}
		c.Ready = strings.TrimPrefix(line, "ready ")
	case <-c.done:
		tb.Fatalf("bench: child %s exited during startup", role)
	case <-time.After(2 * time.Minute):
		tb.Fatalf("bench: child %s not ready after 2 minutes", role)
	}
	return c
}

// Stop asks the child to stop and waits for it; a second Stop is harmless.
func (c *Child) Stop() {
	c.once.Do(func() {
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.Cmd.Process.Kill()
			<-c.done
		}
	})
}

// FleetEnv is the environment of a fleet process for cfg (the variables config.FromEnv reads).
func FleetEnv(cfg config.Config) []string {
	return []string{
		"REDIS_URL=" + cfg.RedisURL, "MONGODB_URI=" + cfg.MongoURI, "MONGODB_DATABASE=" + cfg.Database,
		"OPENAI_API_KEY=" + cfg.OpenAIKey, "OPENAI_BASE_URL=" + cfg.OpenAIBaseURL, "BATCHSYNTH_MODEL=" + cfg.Model,
		"BATCHSYNTH_MODE=" + cfg.Mode,
		"BATCHSYNTH_POLL_INTERVAL=" + cfg.PollInterval.String(), "BATCHSYNTH_FLUSH_DELAY=" + cfg.FlushDelay.String(),
		"BATCHSYNTH_SWEEP_INTERVAL=" + cfg.SweepInterval.String(), "BATCHSYNTH_SYNC_INTERVAL=" + cfg.SyncInterval.String(),
		"BATCHSYNTH_STALE_AFTER=" + cfg.StaleAfter.String(), "BATCHSYNTH_LEASE_DURATION=" + cfg.LeaseDuration.String(),
		fmt.Sprintf("BATCHSYNTH_MAX_LINES=%d", cfg.MaxLines), fmt.Sprintf("BATCHSYNTH_MAX_FILE_BYTES=%d", cfg.MaxFileBytes),
		fmt.Sprintf("BATCHSYNTH_TOKEN_BUDGET=%d", cfg.TokenBudget), fmt.Sprintf("BATCHSYNTH_CONCURRENCY=%d", cfg.Concurrency),
		"BATCHSYNTH_SHUTDOWN_TIMEOUT=" + cfg.ShutdownTimeout.String(), "BATCHSYNTH_LOG_LEVEL=warn",
	}
}
