package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds how long an emulator may take to answer; kinesis-mock
// (Scala.js) needs a couple of seconds on a loaded 2-core machine.
const startTimeout = 45 * time.Second

// StartDynalite starts a fresh in-memory dynalite on a free 127.0.0.1 port and
// returns its endpoint URL. The process is killed when the test ends.
func StartDynalite(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(EmulatorsDir(t), "dynalite", "node_modules", "dynalite")
	cli := filepath.Join(dir, "cli.js")
	ensureInstalled(t, cli)
	return start(t, "dynalite", func(port int, _ int) *exec.Cmd {
		return exec.Command("node", cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", "10", "--deleteTableMs", "10", "--updateTableMs", "10")
	})
}

// StartKinesalite starts a fresh in-memory kinesalite on a free 127.0.0.1 port
// and returns its endpoint URL. Stream state changes take 10 ms.
func StartKinesalite(t testing.TB) string {
	t.Helper()
	pkgDir := filepath.Join(EmulatorsDir(t), "kinesalite")
	ensureInstalled(t, filepath.Join(pkgDir, "node_modules", "kinesalite", "cli.js"))
	// kinesalite's CLI listens on every interface; load the module and bind
	// loopback only.
	const launcher = `const port = +process.argv[1];
require('kinesalite')({createStreamMs: 10, deleteStreamMs: 10, updateStreamMs: 10, shardLimit: 100})
  .listen(port, '127.0.0.1', () => console.log('kinesalite listening on ' + port));`
	return start(t, "kinesalite", func(port int, _ int) *exec.Cmd {
		cmd := exec.Command("node", "-e", launcher, strconv.Itoa(port))
		cmd.Dir = pkgDir
		return cmd
	})
}

// StartKinesisMock starts kinesis-mock (npm kinesis-local) with its plain HTTP
// port on a free port and returns the http:// endpoint URL. State transitions
// (create, split, merge...) take 10 ms. kinesis-mock offers no bind-address
// setting, so it listens on all interfaces on those random ports.
func StartKinesisMock(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(EmulatorsDir(t), "kinesis-local", "node_modules", "kinesis-local")
	mainJS := filepath.Join(dir, "main.js")
	ensureInstalled(t, mainJS)
	return start(t, "kinesis-mock", func(port, tlsPort int) *exec.Cmd {
		cmd := exec.Command("node", mainJS)
		cmd.Dir = dir // it loads server.json (TLS cert) from the working directory
		env := []string{
			"KINESIS_MOCK_PLAIN_PORT=" + strconv.Itoa(port),
			"KINESIS_MOCK_TLS_PORT=" + strconv.Itoa(tlsPort),
			"LOG_LEVEL=WARN",
			"ROOT_LOG_LEVEL=ERROR",
			"SHOULD_PERSIST_DATA=false",
			"SHARD_LIMIT=200",
		}
		for _, v := range []string{
			"CREATE_STREAM_DURATION", "DELETE_STREAM_DURATION", "REGISTER_STREAM_CONSUMER_DURATION",
			"START_STREAM_ENCRYPTION_DURATION", "STOP_STREAM_ENCRYPTION_DURATION",
			"DEREGISTER_STREAM_CONSUMER_DURATION", "MERGE_SHARDS_DURATION", "SPLIT_SHARD_DURATION",
			"UPDATE_SHARD_COUNT_DURATION", "UPDATE_STREAM_MODE_DURATION",
		} {
			env = append(env, v+"=10ms")
		}
		cmd.Env = append(os.Environ(), env...)
		return cmd
	})
}

// start launches the emulator built by mk on free ports, retrying when
// another process grabbed the port between picking and binding.
func start(t testing.TB, name string, mk func(port, spare int) *exec.Cmd) string {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			t.Fatalf("testenv: pick ports for %s: %v", name, err)
		}
		endpoint, err := launch(t, name, mk(ports[0], ports[1]), ports[0])
		if err == nil {
			return endpoint
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("testenv: start %s: %v", name, lastErr)
	return ""
}

var errExited = errors.New("emulator exited before answering")

func launch(t testing.TB, name string, cmd *exec.Cmd, port int) (string, error) {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		return "", fmt.Errorf("create log file: %w", err)
	}
	// A file, not a buffer: no copier goroutines for goleak to find.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setProcessGroup(cmd)
	// Pdeathsig fires when the OS thread that started the child exits, not
	// the process: the Go runtime may retire threads, which killed emulators
	// mid-test. Start and wait on one goroutine locked to its thread, so the
	// thread outlives the child.
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return "", fmt.Errorf("run %s (is node installed?): %w", cmd.Path, err)
	}
	stop := func() {
		killProcessGroup(cmd)
		<-exited
		logFile.Close()
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(endpoint, exited); err != nil {
		stop()
		out, _ := os.ReadFile(logFile.Name())
		return "", fmt.Errorf("%w\n--- %s output ---\n%s", err, name, tail(out, 4000))
	}
	t.Cleanup(stop)
	return endpoint, nil
}

// waitReady polls until the emulator answers any HTTP response (an
// UnknownOperation error is an answer).
func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errExited
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			cancel()
			return nil
		}
		cancel()
		select {
		case <-exited:
			return errExited
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer from %s within %s", endpoint, startTimeout)
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
