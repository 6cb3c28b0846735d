package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/wallarm/apigw-connector/pkg/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-config", stderr)
	var cf commonFlags
	cf.register(fs)
	list := fs.Bool("list", false, "list every setting with its environment variable instead")
	setUsage(fs, "check-config [flags]", `Prints the effective configuration (defaults, --config FILE, environment, flags) with
secrets redacted, then validates it for run: exit 0 when valid, 1 with the setting to fix.
--list lists every setting, its environment variable and its type.`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("takes no arguments, got %q: pass the file with --config", fs.Args())
	}
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SETTING\tENVIRONMENT VARIABLE\tTYPE\tDEFAULT")
		for _, s := range config.Settings() {
			def := s.Default
			if def == "" {
				def = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Path, s.Env, s.Type, def)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nAlso: %s (the YAML file, like --config); X_NODE_URL (host:port) and X_NODE_SCHEME (default https)\n"+
			"fill node.url when it is not set otherwise. Lists are comma-separated, maps key=value,key=value (\\, is a comma inside\n"+
			"an item, \\\\ a backslash), durations 500ms/10s/1m, timestamps RFC 3339. An empty variable counts as unset;\n"+
			"metrics.addr and node.health_path take %q to switch off. Secrets (node.url user info, node.extra_headers values,\n"+
			"firehose.access_keys) are never printed, here or in any message.\n", config.EnvConfigFile, config.Off)
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
	setUsage(fs, "healthcheck [--addr HOST:PORT]", `Exits 0 when the local /healthz answers 200 (the container health check: the image has
no shell). Without --addr it asks 127.0.0.1 on the port of metrics.addr.`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("takes no arguments, got %q", fs.Args())
	}
	target := *addr
	if target == "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		if cfg.Metrics.Addr == "" {
			return fmt.Errorf("metrics.addr is off, so there is no /healthz to ask: enable it (env %sMETRICS_ADDR) or pass --addr", config.EnvPrefix)
		}
		_, port, err := net.SplitHostPort(cfg.Metrics.Addr)
		if err != nil {
			return fmt.Errorf("metrics.addr %q is not host:port: set metrics.addr (env %sMETRICS_ADDR) or pass --addr", cfg.Metrics.Addr, config.EnvPrefix)
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
