package demo

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
)

// The emulators are the npm packages scripts/install-emulators.sh installs
// into <repo>/.cache/emulators (or $EMULATORS_DIR), the same ones the
// integration tests use (internal/testenv).

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
		ports, err := emulator.FreePorts(2)
		if err != nil {
			return "", fmt.Errorf("pick ports for %s: %w", name, err)
		}
		cmd, err := emulator.Command(d.o.RepoRoot, name, ports[0], ports[1])
		if err != nil {
			return "", err
		}
		p, err := d.start(ctx, name, cmd)
		if err != nil {
			return "", err
		}
		endpoint := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		err = emulator.WaitHTTP(ctx, endpoint, p.cmd.Process.Pid, p.done, 60*time.Second)
		if err == nil {
			return endpoint, nil
		}
		lastErr = fmt.Errorf("start %s: %w\n--- %s ---\n%s", name, err, p.logPath, p.logTail(3000))
		d.stopProc(p, 0)
		if !errors.Is(err, emulator.ErrExited) && !errors.Is(err, emulator.ErrPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return "", lastErr
}
