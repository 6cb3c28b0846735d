// Package testenv starts the AWS emulators that integration tests run against
// (dynalite for DynamoDB, kinesalite and kinesis-mock for Kinesis) and builds
// SDK configs pointing at them.
//
// The emulators are npm packages installed by scripts/install-emulators.sh into
// <repo>/.cache/emulators; a Start function runs that script itself when the
// cache is missing. A missing or broken emulator fails the test (t.Fatal),
// never skips it: in CI that is a broken environment, not an optional test.
//
// Endpoints: the product reads its endpoints ONLY from the SDK's standard
// variables AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_DYNAMODB (plus
// AWS_REGION and credentials). Tests have three ways to reach the same code path:
//   - LoadAWSConfig / AWSConfig: an aws.Config whose per-service base endpoints
//     are resolved exactly as those variables would be (a config source the SDK
//     consults before the environment), safe in parallel tests;
//   - SetAWSEnv: t.Setenv of the real variables, for non-parallel tests that
//     exercise the binary's own config loading in-process;
//   - AWSEnv: the variables as "K=V" strings for a subprocess (the real binary).
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
)

// RepoRoot returns the directory holding go.mod, found by walking up from the
// working directory (go test runs each package in its own folder).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := findRepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// EmulatorsDir is where the emulators are installed: $EMULATORS_DIR if set,
// else <repo>/.cache/emulators.
func EmulatorsDir(t testing.TB) string {
	t.Helper()
	return emulator.Dir(RepoRoot(t))
}

var installMu sync.Mutex

// ensureInstalled runs the install script when the file an emulator needs is
// missing. The script itself takes a file lock, so parallel test binaries
// do not install over each other.
func ensureInstalled(t testing.TB, need string) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(need); err == nil {
		return
	}
	script := filepath.Join(RepoRoot(t), "scripts", "install-emulators.sh")
	cmd := exec.Command("bash", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: install emulators (%s): %v\n%s", script, err, out.String())
	}
	if _, err := os.Stat(need); err != nil {
		t.Fatalf("testenv: %s still missing after %s:\n%s", need, script, out.String())
	}
}

// Eventually polls cond every poll until it holds, and returns how long that
// took; it fails the test once timeout has passed.
func Eventually(t testing.TB, timeout, poll time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(poll)
	}
}
