package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The emulators are the npm packages scripts/install-emulators.sh installs
// into <repo>/.cache/emulators (or $EMULATORS_DIR), the same ones the
// integration tests use (internal/testenv).

// loopbackPreload is preloaded into node for emulators that have no
// bind-address setting (kinesis-mock listens on every interface): it makes
// every listen() bind 127.0.0.1.
const loopbackPreload = `'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length && args[0] !== null && typeof args[0] === 'object') {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
`

// emulatorsDir is where the install script puts the emulators.
func emulatorsDir(repo string) string {
	if d := os.Getenv("EMULATORS_DIR"); d != "" {
		return d
	}
	return filepath.Join(repo, ".cache", "emulators")
}

// installEmulators runs scripts/install-emulators.sh (idempotent: a no-op
// when the pinned versions are installed).
func (d *run) installEmulators(ctx context.Context) error {
	script := filepath.Join(d.o.RepoRoot, "scripts", "install-emulators.sh")
	cmd := exec.Command("bash", script)
	cmd.Dir = d.o.RepoRoot
	p, err := d.start(ctx, "install-emulators", cmd)
	if err != nil {
		return err
	}
	if err := d.waitProc(ctx, p); err != nil {
		return fmt.Errorf("install emulators (%s): %w\n%s", script, err, p.logTail(3000))
	}
	return nil
}

// startEmulator starts one emulator on a free loopback port and waits until
// it answers HTTP.
func (d *run) startEmulator(ctx context.Context, name string) (string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // another process may grab the port first
		ports, err := freePorts(2)
		if err != nil {
			return "", fmt.Errorf("pick ports for %s: %w", name, err)
		}
		cmd, err := d.emulatorCmd(name, ports[0], ports[1])
		if err != nil {
			return "", err
		}
		p, err := d.start(ctx, name, cmd)
		if err != nil {
			return "", err
		}
		endpoint := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		err = waitHTTP(ctx, endpoint, p.done, 60*time.Second)
		if err == nil {
			return endpoint, nil
		}
		lastErr = fmt.Errorf("start %s: %w\n--- %s ---\n%s", name, err, p.logPath, p.logTail(3000))
		d.stopProc(p, 0)
		if !errors.Is(err, errExited) || ctx.Err() != nil {
			break
		}
	}
	return "", lastErr
}

func (d *run) emulatorCmd(name string, port, spare int) (*exec.Cmd, error) {
	root := emulatorsDir(d.o.RepoRoot)
	switch name {
	case "dynalite":
		cli := filepath.Join(root, "dynalite", "node_modules", "dynalite", "cli.js")
		return exec.Command("node", cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", "10", "--deleteTableMs", "10", "--updateTableMs", "10"), nil
	case "kinesis-mock":
		dir := filepath.Join(root, "kinesis-local", "node_modules", "kinesis-local")
		preload := filepath.Join(d.dir, "bind-loopback.js")
		if err := os.WriteFile(preload, []byte(loopbackPreload), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", preload, err)
		}
		cmd := exec.Command("node", "--require", preload, filepath.Join(dir, "main.js"))
		cmd.Dir = dir // it reads server.json (its TLS certificate) from the working directory
		cmd.Env = append(os.Environ(),
			"KINESIS_MOCK_PLAIN_PORT="+strconv.Itoa(port),
			"KINESIS_MOCK_TLS_PORT="+strconv.Itoa(spare),
			"LOG_LEVEL=WARN", "ROOT_LOG_LEVEL=ERROR", "SHOULD_PERSIST_DATA=false",
			"CREATE_STREAM_DURATION=10ms", "DELETE_STREAM_DURATION=10ms",
			"UPDATE_SHARD_COUNT_DURATION=10ms", "SPLIT_SHARD_DURATION=10ms", "MERGE_SHARDS_DURATION=10ms",
		)
		return cmd, nil
	}
	return nil, fmt.Errorf("unknown emulator %q", name)
}

var errExited = errors.New("process exited before answering")

// waitHTTP polls endpoint until it answers any HTTP response.
func waitHTTP(ctx context.Context, endpoint string, exited <-chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s within %s: %w", endpoint, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errExited
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
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
