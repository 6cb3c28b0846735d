// Package emulator knows how to launch the npm AWS emulators that
// scripts/install-emulators.sh installs (dynalite, kinesalite, kinesis-mock)
// on loopback ports. Tests (internal/testenv) and the demo share it.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Names of the emulators.
const (
	Dynalite    = "dynalite"
	Kinesalite  = "kinesalite"
	KinesisMock = "kinesis-mock"
)

// Dir is where the install script puts the emulators: $EMULATORS_DIR, else
// <repo>/.cache/emulators.
func Dir(repoRoot string) string {
	if d := os.Getenv("EMULATORS_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, ".cache", "emulators")
}

// EntryPoint is the file that must exist for name to be launchable.
func EntryPoint(repoRoot, name string) (string, error) {
	root := Dir(repoRoot)
	switch name {
	case Dynalite:
		return filepath.Join(root, "dynalite", "node_modules", "dynalite", "cli.js"), nil
	case Kinesalite:
		return filepath.Join(root, "kinesalite", "node_modules", "kinesalite", "cli.js"), nil
	case KinesisMock:
		return filepath.Join(root, "kinesis-local", "node_modules", "kinesis-local", "main.js"), nil
	}
	return "", fmt.Errorf("unknown emulator %q", name)
}

// Command builds the command that runs name on 127.0.0.1:port (spare is a
// second free port, for kinesis-mock's TLS listener). Every emulator binds
// loopback only; state changes (create, split, merge, ...) take 10 ms.
func Command(repoRoot, name string, port, spare int) (*exec.Cmd, error) {
	entry, err := EntryPoint(repoRoot, name)
	if err != nil {
		return nil, err
	}
	p := strconv.Itoa(port)
	switch name {
	case Dynalite:
		return exec.Command("node", entry, "--host", "127.0.0.1", "--port", p,
			"--createTableMs", "10", "--deleteTableMs", "10", "--updateTableMs", "10"), nil
	case Kinesalite:
		// Its CLI listens on every interface: load the module and bind loopback.
		const launcher = `const port = +process.argv[1];
require('kinesalite')({createStreamMs: 10, deleteStreamMs: 10, updateStreamMs: 10, shardLimit: 100})
  .listen(port, '127.0.0.1', () => console.log('kinesalite listening on ' + port));`
		cmd := exec.Command("node", "-e", launcher, p)
		cmd.Dir = filepath.Join(Dir(repoRoot), "kinesalite")
		return cmd, nil
	case KinesisMock:
		// kinesis-mock has no bind-address setting: a preload makes its
		// listen() calls bind 127.0.0.1.
		cmd := exec.Command("node", "--require", filepath.Join(repoRoot, "scripts", "bind-loopback.js"), entry)
		cmd.Dir = filepath.Dir(entry) // it loads server.json (TLS cert) from the working directory
		env := []string{
			"KINESIS_MOCK_PLAIN_PORT=" + p,
			"KINESIS_MOCK_TLS_PORT=" + strconv.Itoa(spare),
			"LOG_LEVEL=WARN", "ROOT_LOG_LEVEL=ERROR", "SHOULD_PERSIST_DATA=false", "SHARD_LIMIT=200",
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
		return cmd, nil
	}
	return nil, fmt.Errorf("unknown emulator %q", name)
}

// ErrExited: the process ended before it answered.
var ErrExited = errors.New("emulator exited before answering")

// ErrPortTaken: something answered on the port, but it is not the emulator's
// listener (another process bound the port first). Start it on another port.
var ErrPortTaken = errors.New("another process answers on the emulator's port")

// WaitHTTP polls endpoint until it gives any HTTP answer (an UnknownOperation
// error is an answer), the process exits, ctx ends or limit passes. When pid is
// not 0, the answer counts only if process pid holds the port's listener.
func WaitHTTP(ctx context.Context, endpoint string, pid int, exited <-chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return checkOwner(endpoint, pid)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s within %s: %w", endpoint, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return ErrExited
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreePorts returns n distinct free loopback ports.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
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

// checkOwner returns ErrPortTaken when endpoint's port is listened on by
// another process than pid. A check that cannot be made passes.
func checkOwner(endpoint string, pid int) error {
	if pid == 0 {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return nil
	}
	if owned, err := listensOn(pid, port); err == nil && !owned {
		return fmt.Errorf("%w: %s (pid %d does not listen on it)", ErrPortTaken, endpoint, pid)
	}
	return nil
}

// KillGroupUnlessReaped is KillProcessGroup while reaped (closed once the
// process was waited for) is open. A reaped leader's group is left alone: its
// pid may already lead someone else's group. What is started this way (the
// emulators, the demo's own binaries) runs as one process, so nothing of it
// outlives the leader.
func KillGroupUnlessReaped(cmd *exec.Cmd, hard bool, reaped <-chan struct{}) {
	select {
	case <-reaped:
	default:
		KillProcessGroup(cmd, hard)
	}
}
