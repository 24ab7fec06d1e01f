package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// moduleRoot is the repository root, found from this file's place in it.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testenv package's source")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("no go.mod at %s: %w", root, err)
	}
	return root, nil
}

// Build runs `go build -o out pkg` (pkg relative to the module root, e.g. ./cmd/batchsynth) without the
// race detector, whatever the test binary was built with.
func Build(pkg, out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// MongoServer is the embedded FerretDB (internal/devstack, SQLite backend, behind its one-connection proxy)
// running as a process of its own: see testdata/mongoserver.
type MongoServer struct {
	URI   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// StartMongoServer builds testdata/mongoserver into dir and starts it.
func StartMongoServer(dir string) (*MongoServer, error) {
	bin := filepath.Join(dir, "mongoserver")
	if err := Build("./internal/testenv/testdata/mongoserver", bin); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("error starting %s: %w", bin, err)
	}
	m := &MongoServer{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	uri := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			uri <- strings.TrimSpace(sc.Text())
		}
		close(uri)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	select {
	case u, ok := <-uri:
		if !ok || u == "" {
			<-m.done
			return nil, fmt.Errorf("mongoserver exited without serving (%v)", cmd.ProcessState)
		}
		m.URI = u
		return m, nil
	case <-time.After(3 * time.Minute):
		m.Close()
		return nil, errors.New("mongoserver did not start within 3 minutes")
	}
}

// Close stops the server (it removes its data) and waits for it.
func (m *MongoServer) Close() {
	_ = m.stdin.Close()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

var useMongo struct {
	once sync.Once
	err  error
}

// UseMongoServer makes the tests of this test binary use an out-of-process FerretDB: unless MONGODB_URI is
// set already (a real MongoDB, or a server of the caller's), it starts one and sets MONGODB_URI, which
// internal/testenv reads on its first use. Call it before anything asks testenv for MongoDB. The server
// lives until the test binary exits: it stops when its stdin closes, and removes its data then.
func UseMongoServer() error { return UseMongoServers(1) }

// UseMongoServers is UseMongoServer with n servers, for a test binary whose tests each own their databases
// and run in parallel: FerretDB serves one command at a time, so tests that share one server wait for each
// other however many cores there are. MONGODB_URI names the first; MongoURIsEnv lists them all. Only the
// first call of the test binary decides n.
func UseMongoServers(n int) error {
	useMongo.once.Do(func() {
		if os.Getenv("MONGODB_URI") != "" {
			return
		}
		dir, err := os.MkdirTemp("", "batchsynth-mongoserver-*")
		if err != nil {
			useMongo.err = err
			return
		}
		defer os.RemoveAll(dir) // the binary keeps running after its file is gone
		var uris []string
		for i := range max(n, 1) {
			sub := filepath.Join(dir, strconv.Itoa(i))
			if err := os.Mkdir(sub, 0o755); err != nil {
				useMongo.err = err
				return
			}
			m, err := StartMongoServer(sub)
			if err != nil {
				useMongo.err = fmt.Errorf("error starting an out-of-process FerretDB (set MONGODB_URI to use a server of your own): %w", err)
				return
			}
			uris = append(uris, m.URI)
		}
		if err := os.Setenv(MongoURIsEnv, strings.Join(uris, " ")); err != nil {
			useMongo.err = err
			return
		}
		useMongo.err = os.Setenv("MONGODB_URI", uris[0])
	})
	return useMongo.err
}
