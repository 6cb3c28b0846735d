package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/wallarm/apigw-connector/pkg/config"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// commonFlags are accepted by every command that reads the configuration.
type commonFlags struct {
	configPath  string
	metricsAddr string
	logFormat   string
	logLevel    string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", "", "YAML configuration file (optional; env "+config.EnvConfigFile+")")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", metricsAddrHelp(fs.Name()))
	fs.StringVar(&c.logFormat, "log-format", "", "json or text (overrides log.format)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn, error (overrides log.level)")
}

// metricsAddrHelp says what --metrics-addr does in each command: only run
// listens by default, so only run's help names the default listener.
func metricsAddrHelp(command string) string {
	switch command {
	case "run":
		return "listener for /metrics, /healthz, /readyz (overrides metrics.addr, default \":9102\"; \"off\" disables)"
	case "replay":
		return "serve /metrics, /healthz, /readyz on this address while the replay runs (default: no listener, whatever metrics.addr says)"
	case "check-config":
		return "metrics.addr to print and check (overrides metrics.addr, default \":9102\"; \"off\" disables)"
	case "healthcheck":
		return "the address run listens on, to ask its /healthz (overrides metrics.addr, default \":9102\"; --addr wins)"
	}
	return "ignored: " + command + " opens no listener (accepted so one set of flags fits every command)"
}

// load reads the configuration and applies the flags, which win over the environment.
func (c *commonFlags) load() (config.Config, error) {
	cfg, err := config.LoadFromOS(c.configPath)
	if err != nil {
		return cfg, err
	}
	if c.metricsAddr == "off" {
		cfg.Metrics.Addr = ""
	} else if c.metricsAddr != "" {
		cfg.Metrics.Addr = c.metricsAddr
	}
	if c.logFormat != "" {
		cfg.Log.Format = c.logFormat
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	return cfg, nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// setUsage gives a command a usage text: its synopsis, what it does, its flags.
func setUsage(fs *flag.FlagSet, synopsis, about string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: apigw-connector %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage // the flag package printed the mistake and the usage
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	return telemetry.NewLogger(cfg.Log, w).With("version", version)
}
