package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// TestKinesisTwoProcessesKill9 runs two real `apigw-connector run` workers on one stream
// (kinesis-mock, dynalite), kills one with SIGKILL mid-stream, and checks that the other takes
// its shards over and every call reaches the node (duplicates, the price of at-least-once after
// a crash, are counted and reported).
func TestKinesisTwoProcessesKill9(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)
	kc := testenv.KinesisClient(t, kep)
	stream, app := fmt.Sprintf("proc-%d", os.Getpid()), fmt.Sprintf("proc-app-%d", os.Getpid())
	testenv.CreateStream(t, kc, stream, 4)

	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	cfg := writeConfig(t, url, fmt.Sprintf(`source:
  type: kinesis
kinesis:
  stream: %s
  application_name: %s
  failover_time: 1500ms
  checkpoint_interval: 300ms
  shutdown_grace: 2s
  shard_sync_interval: 1s
`, stream, app))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := func(worker string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--metrics-addr", "off", "--log-format", "text")
		cmd.Env = append(os.Environ(), testenv.AWSEnv(kep, dep)...)
		cmd.Env = append(cmd.Env, "APIGW_CONNECTOR_KINESIS_WORKER_ID="+worker)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start worker %s: %v", worker, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("worker %s output:\n%s", worker, tailLines(logs.String(), 40))
			}
		})
		return cmd, &logs
	}

	g := traffic.New(traffic.Options{Seed: 11})
	var ids []string
	produce := func(n int) {
		var recs []testenv.Record
		for i, r := range g.Records(n, 10, 20) {
			recs = append(recs, testenv.Record{PartitionKey: fmt.Sprintf("pk-%d-%d", len(ids), i), Data: r.Data})
			for _, c := range r.Calls {
				ids = append(ids, c.RequestID)
			}
		}
		testenv.PutRecords(t, kc, stream, recs...)
	}
	waitAll := func(d time.Duration) (dups int) {
		deadline := time.Now().Add(d)
		for {
			missing, repeated := dn.CheckDelivered(ids)
			if len(missing) == 0 {
				return len(repeated)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d calls never reached the node", len(missing), len(ids))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	a, _ := start("worker-a")
	b, bLogs := start("worker-b")
	produce(40)
	waitAll(45 * time.Second)
	produce(20)
	time.Sleep(300 * time.Millisecond) // some of these are in flight when worker A dies
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 worker A: %v", err)
	}
	killed := time.Now()
	_ = a.Wait()
	produce(40)
	dups := waitAll(45 * time.Second)
	t.Logf("%d calls delivered %s after kill -9 of one worker; %d delivered more than once (re-read after its last checkpoint)",
		len(ids), time.Since(killed).Round(time.Millisecond), dups)

	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := b.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("worker B exited %d after SIGTERM, want 0\n%s", ee.ExitCode(), tailLines(bLogs.String(), 40))
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
