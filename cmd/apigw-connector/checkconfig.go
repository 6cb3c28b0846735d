package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wallarm/apigw-connector/pkg/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-config", stderr)
	var cf commonFlags
	cf.register(fs)
	list := fs.Bool("list", false, "list every setting with its environment variable instead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *list {
		for _, s := range config.Settings() {
			fmt.Fprintf(stdout, "%-45s %-60s %s\n", s.Path, s.Env, s.Type)
		}
		return nil
	}
	cfg, err := cf.load()
	if err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	out, err := cfg.YAML()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# effective configuration (secrets redacted)\n%s", out)
	if err := cfg.ValidateForRun(); err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	fmt.Fprintln(stderr, "configuration is valid")
	return nil
}

// cmdHealthcheck is the container health check: the image has no shell or curl.
func cmdHealthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	addr := fs.String("addr", "", "host:port of the metrics listener (default: metrics.addr on 127.0.0.1)")
	var cf commonFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	target := *addr
	if target == "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		_, port, err := net.SplitHostPort(cfg.Metrics.Addr)
		if err != nil {
			return fmt.Errorf("metrics.addr %q: %w", cfg.Metrics.Addr, err)
		}
		target = net.JoinHostPort("127.0.0.1", port)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s answered %s", target, resp.Status)
	}
	return nil
}
