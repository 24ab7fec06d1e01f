package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	redisStartTimeout = 10 * time.Second
	redisStopTimeout  = 10 * time.Second
	// redisStartAttempts covers losing the FreePort race to another process.
	redisStartAttempts = 3
)

var (
	redisInstallOnce sync.Once
	redisInstallErr  error
)

// Redis starts a redis-server of this test's own on a free port of 127.0.0.1,
// with persistence off, and stops it when the test ends. It returns a
// redis:// URL selecting DB 0. REDIS_URL is ignored on purpose; see the
// package documentation.
//
// If redis-server is not on PATH and the process runs as root with apt-get
// available, it is installed once per process (asynq needs Redis >= 6.2,
// which Debian 12 has). Otherwise the test fails.
func Redis(t testing.TB) string {
	t.Helper()
	bin, err := redisServerPath()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}

	var lastErr error
	for range redisStartAttempts {
		url, err := startRedis(t, bin)
		if err == nil {
			return url
		}
		lastErr = err
	}
	t.Fatalf("testenv: error starting redis-server (%d attempts): %v", redisStartAttempts, lastErr)
	return ""
}

func startRedis(t testing.TB, bin string) (string, error) {
	port := FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", t.TempDir(),
		"--daemonize", "no",
	)
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("error running %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	if err := waitRedis(addr, exited); err != nil {
		stopProcess(cmd, exited)
		return "", fmt.Errorf("%w; redis-server output:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if !stopProcess(cmd, exited) {
			t.Errorf("testenv: redis-server on %s did not stop within %v; killed it", addr, redisStopTimeout)
		}
	})
	return "redis://" + addr + "/0", nil
}

// waitRedis waits for a PING to succeed, giving up early if the server exits
// (most often: it lost the port to another process).
func waitRedis(addr string, exited <-chan struct{}) error {
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	deadline := time.Now().Add(redisStartTimeout)
	for {
		select {
		case <-exited:
			return errors.New("redis-server exited during startup")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within %v: %w", addr, redisStartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopProcess asks the process to exit and kills it if it has not within
// redisStopTimeout. It reports whether the process stopped on its own.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) bool {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return true
	case <-time.After(redisStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return false
	}
}

func redisServerPath() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	redisInstallOnce.Do(func() { redisInstallErr = installRedis() })
	if redisInstallErr != nil {
		return "", redisInstallErr
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server is still not on PATH after installing it: %w", err)
	}
	return p, nil
}

func installRedis() error {
	const help = "install it (Debian/Ubuntu: apt-get install -y redis-server; Redis >= 6.2) and make sure redis-server is on PATH"
	if os.Geteuid() != 0 {
		return errors.New("redis-server is not on PATH and this process is not root, so it cannot be installed here: " + help)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("redis-server is not on PATH and apt-get is not available: " + help)
	}
	// Test binaries of several packages run at once and may all get here;
	// the lock timeout makes them queue behind one another instead of failing.
	lock := []string{"-o", "DPkg::Lock::Timeout=600"}
	steps := [][]string{
		append([]string{"update", "-q"}, lock...),
		append([]string{"install", "-y", "-q", "--no-install-recommends", "redis-server"}, lock...),
	}
	for _, args := range steps {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			// Another process may have installed it while this one waited.
			if _, lookErr := exec.LookPath("redis-server"); lookErr == nil {
				return nil
			}
			return fmt.Errorf("redis-server is not on PATH and `apt-get %s` failed: %w\n%s\n%s",
				strings.Join(args, " "), err, tail(out, 2000), help)
		}
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// lockedBuffer collects a child's output while it runs; exec copies stdout and
// stderr from separate goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
