// Command apigw-connector turns API Gateway access logs (CloudWatch Logs
// subscription data on Kinesis or Firehose, or exported files) into API calls
// delivered to the Wallarm Native Node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/wallarm/apigw-connector/pkg/node"
)

// Stamped at build time through -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// errUsage marks a command-line mistake: exit code 2. Returned bare, the
// mistake was already reported (the flag package prints its own message and
// the usage); usageErrorf carries a message that run prints.
var errUsage = errors.New("usage")

// errHelp is returned for -h/--help: the usage was printed on request, exit 0.
var errHelp = errors.New("help requested")

// usageError is a command-line mistake with a message still to print.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

// usageErrorf reports a command-line mistake (exit code 2) with its message.
func usageErrorf(format string, a ...any) error {
	return usageError{msg: fmt.Sprintf(format, a...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func init() {
	// The node sees this build's version in the connector-version header.
	node.Version = version
}

const usage = `apigw-connector: API Gateway access logs -> Wallarm Native Node

Usage:
  apigw-connector run          [--config FILE] [--metrics-addr ADDR]   consume Kinesis or Firehose (source.type)
  apigw-connector replay       [--config FILE] [FILE...|-]             forward exported access logs or CloudWatch Logs documents
  apigw-connector devnode      [--listen 127.0.0.1:5050] [--fail-for D] [--latency D]   a local stand-in for the node
  apigw-connector inventory    [--config FILE] [--format table|json|openapi] [FILE...|-]   the API inventory of exported logs, without a node
  apigw-connector probe        [--config FILE] [--host H] [--node-metrics URL]   check the configured node end to end (exit 0: it accepted a probe call)
  apigw-connector capture      --listen ADDR [--out FILE] [--upstream URL] [--summary FILE]   record any connector's messages (and a real node's replies)
  apigw-connector generate     [flags]                                 realistic API Gateway traffic (stdout, files or a Kinesis stream)
  apigw-connector check-config [--config FILE] [--list]                print the effective settings (secrets redacted) and validate them
  apigw-connector healthcheck  [--addr 127.0.0.1:9102]                 exit 0 when the local /healthz answers (container health checks)
  apigw-connector version

Run apigw-connector COMMAND -h for a command's flags; apigw-connector check-config --list lists every setting.
Every setting can also be given as an environment variable: APIGW_CONNECTOR_<PATH_IN_UPPER_SNAKE>
(node.url -> APIGW_CONNECTOR_NODE_URL); X_NODE_URL and X_NODE_SCHEME work as in the official Lambda.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "replay":
		err = cmdReplay(ctx, args[1:], stdin, stdout, stderr)
	case "devnode":
		err = cmdDevnode(ctx, args[1:], stdout, stderr)
	case "inventory":
		err = cmdInventory(ctx, args[1:], stdin, stdout, stderr)
	case "probe":
		err = cmdProbe(ctx, args[1:], stdout, stderr)
	case "capture":
		err = cmdCapture(ctx, args[1:], stdout, stderr)
	case "generate":
		err = cmdGenerate(ctx, args[1:], stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args[1:], stderr)
	case "version", "--version", "-v":
		err = cmdVersion(args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			var ue usageError
			if errors.As(err, &ue) {
				fmt.Fprintf(stderr, "apigw-connector %s: %s (see apigw-connector %s -h)\n", args[0], ue.msg, args[0])
			}
			return 2
		}
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "apigw-connector %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// cmdVersion follows every command's rule: -h is usage (exit 0), a stray
// argument or flag is a usage mistake (exit 2).
func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	setUsage(fs, "version", "Prints the version and the commit this binary was built from.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("takes no arguments, got %q", fs.Args())
	}
	fmt.Fprintf(stdout, "apigw-connector %s (commit %s)\n", version, commit)
	return nil
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

// signalContext is cancelled on the first SIGTERM/SIGINT (graceful stop);
// a second signal exits at once, as operators expect of Ctrl-C twice.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		fmt.Fprintln(os.Stderr, "second signal: exiting now")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
