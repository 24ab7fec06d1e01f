package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/fleet"
	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/testenv"
	"github.com/floridify/batchsynth/scheduler"
)

// binDir holds the batchsynth binary, built once for the package's tests.
var binDir string

// TestMain puts the package on an out-of-process FerretDB before any test asks testenv for MongoDB (a failure
// there is reported by each test that needs it), so testenv never starts one in this process and has nothing
// to stop; it removes the built binary at the end.
func TestMain(m *testing.M) {
	_ = testenv.UseMongoServer()
	dir, err := os.MkdirTemp("", "batchsynth-chaos-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce struct {
	sync.Once
	bin string
	err error
}

// binary builds cmd/batchsynth (without -race) once per test binary and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		buildOnce.bin = filepath.Join(binDir, "batchsynth")
		buildOnce.err = testenv.Build("./cmd/batchsynth", buildOnce.bin)
		t.Logf("built %s in %s", buildOnce.bin, time.Since(start).Round(time.Millisecond))
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

// cluster is a fleet of batchsynth processes (the built binary) on a test's own services.
type cluster struct {
	t    *testing.T
	bin  string
	env  []string
	logs string
	cfg  config.Config // what the processes run with
	emu  *emulator.Server
	ctl  *fleet.Fleet // an in-test process without roles: submits and inspects

	mu    sync.Mutex
	procs map[string]*proc
	gen   map[string]int
}

// proc is one running incarnation of a named process (worker-1, scheduler-0, ...).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // from Wait, once done is closed
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// started reports whether a process got through its start (connected, indexes checked, serving). A signal
// before that ends the start with an error, which is not what the SIGTERM checks are about.
func (p *proc) started() bool {
	b, err := os.ReadFile(p.log)
	return err == nil && (bytes.Contains(b, []byte(`msg="worker started"`)) || bytes.Contains(b, []byte(`msg="scheduler started`)))
}

// clusterEnv is the configuration every process gets: the test's services and short intervals.
func clusterEnv(redisURL, mongoURI, db, baseURL string, extra map[string]string) map[string]string {
	env := map[string]string{
		"REDIS_URL": redisURL, "MONGODB_URI": mongoURI, "MONGODB_DATABASE": db,
		"OPENAI_API_KEY": "sk-chaos", "OPENAI_BASE_URL": baseURL,
		"BATCHSYNTH_POLL_INTERVAL": "1s", "BATCHSYNTH_FLUSH_DELAY": "1s", "BATCHSYNTH_SWEEP_INTERVAL": "1s",
		"BATCHSYNTH_SYNC_INTERVAL": "1s", "BATCHSYNTH_LEASE_DURATION": "3s", "BATCHSYNTH_STALE_AFTER": "15s",
		"BATCHSYNTH_SHUTDOWN_TIMEOUT": "5s", "BATCHSYNTH_CONCURRENCY": "4", "BATCHSYNTH_LOG_LEVEL": "info",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startCluster builds the binary, starts a redis-server, a MongoDB database and the emulator, and opens the
// in-test control process. No batchsynth process runs yet.
func startCluster(t *testing.T, emu emulator.Config, extra map[string]string) *cluster {
	t.Helper()
	if err := testenv.UseMongoServer(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := binary(t)
	redisURL := testenv.Redis(t)
	mongoURI := testenv.MongoURI(t)
	_, db := testenv.Mongo(t)
	srv, baseURL := testenv.Emulator(t, emu)
	kv := clusterEnv(redisURL, mongoURI, db, baseURL, extra)
	env := os.Environ()
	for k, v := range kv {
		env = append(env, k+"="+v)
	}
	cfg, err := config.FromEnv(func(k string) string { return kv[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := fleet.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, env: env, logs: filepath.Join(dir, "logs"), cfg: cfg, emu: srv, ctl: ctl,
		procs: map[string]*proc{}, gen: map[string]int{}}
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stopAll()
		ctl.Close()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// start runs a new incarnation of process name (role worker or scheduler).
func (c *cluster) start(name, role string) *proc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gen[name]
	c.gen[name]++
	logPath := filepath.Join(c.logs, fmt.Sprintf("%s.%02d.log", name, g))
	lf, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, role)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		c.t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	c.procs[name] = p
	return p
}

func (c *cluster) get(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// running returns the current incarnation of every process.
func (c *cluster) running() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*proc, 0, len(c.procs))
	for _, p := range c.procs {
		out = append(out, p)
	}
	return out
}

// kill SIGKILLs p and waits for it to be gone.
func (c *cluster) kill(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and returns how long p took to exit and its exit error (nil: exit 0). It kills p if
// it outlives limit.
func (c *cluster) term(p *proc, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(limit):
		c.kill(p)
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, limit)
	}
}

// stopAll sends SIGTERM to every running process and waits for them.
func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, p := range c.running() {
		select {
		case <-p.done:
			continue
		default:
		}
		wg.Go(func() { _, _ = c.term(p, 30*time.Second) })
	}
	wg.Wait()
}

var errNoHolder = errors.New("no scheduler process holds the lease")

// holder returns the live scheduler process holding the lease, found by the pid in its id (host-pid-random).
func (c *cluster) holder(ctx context.Context) *proc {
	id := scheduler.Holder(ctx, c.ctl.Redis)
	parts := strings.Split(id, "-")
	if len(parts) < 3 {
		return nil
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return nil
	}
	for _, p := range c.running() {
		if p.pid() != pid || !strings.HasPrefix(p.name, "scheduler") {
			continue
		}
		select {
		case <-p.done:
		default:
			return p
		}
	}
	return nil
}

// dumpLogs prints the warnings and errors of every process log.
func (c *cluster) dumpLogs() {
	entries, _ := os.ReadDir(c.logs)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(c.logs, e.Name()))
		if err != nil {
			continue
		}
		var keep []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
				keep = append(keep, l)
			}
		}
		if len(keep) > 40 {
			keep = append(keep[:20], append([]string{fmt.Sprintf("... %d lines ...", len(keep)-40)}, keep[len(keep)-20:]...)...)
		}
		c.t.Logf("---- %s: %d warnings and errors\n%s", e.Name(), len(keep), strings.Join(keep, "\n"))
	}
}

// waitJob waits until the job is finished, checking cheaply (a count of its unsettled requests) and reading
// the full progress only once that is zero.
func waitJob(ctx context.Context, d *pipeline.Deps, jobID string) (*pipeline.JobProgress, error) {
	for {
		job, err := d.Store.Job(ctx, jobID)
		if err != nil {
			return &pipeline.JobProgress{}, err
		}
		if job.Status == store.JobRunning || job.Status == store.JobDone || job.Status == store.JobCancelled {
			n, err := d.Store.Collection(store.CollRequests).CountDocuments(ctx, bson.M{"job_ids": jobID,
				"state": bson.M{"$in": bson.A{store.StatePending, store.StateClaimed, store.StateSubmitted}}})
			if err != nil {
				return &pipeline.JobProgress{}, err
			}
			if n == 0 {
				p, err := d.Progress(ctx, jobID)
				if err != nil || p.Finished {
					return p, err
				}
			}
		}
		select {
		case <-ctx.Done():
			p, err := d.Progress(context.Background(), jobID)
			if err != nil {
				p = &pipeline.JobProgress{}
			}
			return p, fmt.Errorf("job %s not finished: %w", jobID, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// waitDrained waits until no batch document is in flight.
func waitDrained(ctx context.Context, st *store.Store) error {
	for {
		n, err := st.Collection(store.CollBatches).CountDocuments(ctx, bson.M{"state": bson.M{"$nin": bson.A{store.BatchApplied, store.BatchAbandoned}}})
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d batch documents still in flight: %w", n, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tail returns the last n bytes of a file, for messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
