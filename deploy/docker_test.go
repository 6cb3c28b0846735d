package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/source/kinesis"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, file string) []instruction {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") { // comment inside a continued instruction
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a continued line", file)
	}
	return out
}

// stage is a FROM and what follows it.
type stage struct {
	image, name string
	body        []instruction
}

func stages(ins []instruction) []stage {
	var out []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			var f []string
			for _, w := range strings.Fields(in.args) {
				if !strings.HasPrefix(w, "--") { // --platform=...
					f = append(f, w)
				}
			}
			s := stage{image: f[len(f)-1]}
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				s.image, s.name = f[0], f[2]
			} else {
				s.image = f[0]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].body = append(out[len(out)-1].body, in)
		}
	}
	return out
}

var (
	digestRef  = regexp.MustCompile(`@sha256:[a-f0-9]{64}$`)
	versionTag = regexp.MustCompile(`:v?[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9._-]*$`)
)

// pinned reports whether an image reference names one exact version.
func pinned(ref string) bool {
	if strings.Contains(ref, ":latest") {
		return false
	}
	return digestRef.MatchString(ref) || versionTag.MatchString(ref)
}

func execForm(t *testing.T, args string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		t.Fatalf("%q is not exec (JSON) form: %v", args, err)
	}
	return v
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDockerfileInvariants(t *testing.T) {
	t.Parallel()
	ins := parseDockerfile(t, "../Dockerfile")
	st := stages(ins)
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(st))
	}
	names := map[string]bool{}
	for _, s := range st {
		switch {
		case s.image == "scratch", names[s.image]:
		case !pinned(s.image):
			t.Errorf("FROM %s is not pinned to an exact version tag or digest", s.image)
		}
		if s.name != "" {
			names[s.name] = true
		}
	}
	// The build image is the toolchain CI tests with.
	goTag := "golang:" + strings.TrimPrefix(runtime.Version(), "go") + "-"
	if !strings.HasPrefix(st[0].image, goTag) {
		t.Errorf("build stage FROM %s, want %s* (the Go version CI runs: %s)", st[0].image, goTag, runtime.Version())
	}
	var buildCalls bool
	for _, in := range st[0].body {
		if in.cmd == "RUN" && strings.Contains(in.args, "make image-build") {
			buildCalls = true
		}
	}
	if !buildCalls {
		t.Error("the build stage must run `make image-build`, the target CI builds with")
	}

	final := st[len(st)-1]
	got := map[string][]instruction{}
	for _, in := range final.body {
		got[in.cmd] = append(got[in.cmd], in)
	}
	if len(got["RUN"]) > 0 {
		t.Errorf("the runtime stage runs commands %v: it has no shell and must not write at run time", got["RUN"])
	}
	if len(got["VOLUME"]) > 0 {
		t.Error("VOLUME in the runtime stage: the connector writes nothing and runs with a read-only root")
	}
	users := got["USER"]
	if len(users) == 0 || !nonRootUser(users[len(users)-1].args) {
		t.Errorf("runtime stage USER %v must be non-root", users)
	} else if uid, _, _ := strings.Cut(users[len(users)-1].args, ":"); final.image == "scratch" {
		if _, err := strconv.Atoi(uid); err != nil {
			t.Errorf("USER %q on scratch must be numeric: there is no /etc/passwd", uid)
		}
	}
	if len(got["ENTRYPOINT"]) != 1 || !slices.Equal(execForm(t, got["ENTRYPOINT"][0].args), []string{"/apigw-connector"}) {
		t.Errorf("ENTRYPOINT %v, want [\"/apigw-connector\"]", got["ENTRYPOINT"])
	}
	if len(got["CMD"]) != 1 || !slices.Equal(execForm(t, got["CMD"][0].args), []string{"run"}) {
		t.Errorf("CMD %v, want [\"run\"]", got["CMD"])
	}
	if len(got["HEALTHCHECK"]) != 1 {
		t.Fatal("no HEALTHCHECK")
	}
	hc := got["HEALTHCHECK"][0].args
	_, cmd, ok := strings.Cut(hc, "CMD ")
	if !ok || !slices.Equal(execForm(t, cmd), []string{"/apigw-connector", "healthcheck"}) {
		t.Errorf("HEALTHCHECK %q, want CMD [\"/apigw-connector\", \"healthcheck\"]", hc)
	}
	var exposed []string
	for _, in := range got["EXPOSE"] {
		exposed = append(exposed, strings.Fields(in.args)...)
	}
	for _, want := range []string{port(t, telemetry.DefaultMetricsConfig().Addr), port(t, firehose.DefaultConfig().Listen)} {
		if !slices.Contains(exposed, want) {
			t.Errorf("EXPOSE %v lacks %s (a default listener port)", exposed, want)
		}
	}
	var certs bool
	for _, in := range got["COPY"] {
		if strings.Contains(in.args, "ca-certificates.crt") {
			certs = true
		}
	}
	if final.image == "scratch" && !certs {
		t.Error("scratch image without CA certificates: TLS to the node and AWS would fail")
	}
}

func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "Makefile", "cmd", "pkg", "internal"} {
		for _, p := range patterns {
			if m, _ := filepath.Match(p, keep); m {
				t.Errorf(".dockerignore pattern %q drops %s, which the build needs", p, keep)
			}
		}
	}
	if !slices.Contains(patterns, ".git") {
		t.Error(".dockerignore must exclude .git")
	}
}

// The Dockerfile runs `make image-build`; so does this test, so the binary the
// image would hold is built and run in CI: static (runs on scratch) and stamped.
func TestImageBuildTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	out := filepath.Join(t.TempDir(), "apigw-connector")
	cmd := exec.Command("make", "--no-print-directory", "-C", "..", "image-build", "OUT="+out, "VERSION=9.8.7-test", "COMMIT=c0ffee")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("open binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary is dynamically linked: it cannot run on scratch (build with CGO_ENABLED=0)")
		}
	}
	v, err := exec.Command(out, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, v)
	}
	if !strings.Contains(string(v), "9.8.7-test") || !strings.Contains(string(v), "c0ffee") {
		t.Errorf("version output %q lacks the stamped version and commit", v)
	}
	// The container health check works against a live metrics listener and
	// fails without one, as ECS expects (exit 0/1).
	hc := exec.Command(out, "healthcheck", "--addr", "127.0.0.1:1")
	hc.Env = []string{}
	if err := hc.Run(); err == nil {
		t.Error("healthcheck succeeded with nothing listening")
	}
}

func TestMakefileTargets(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if m := regexp.MustCompile(`^([a-z][a-z-]*):(.*)$`).FindStringSubmatch(l); m != nil && !strings.Contains(m[1], "=") {
			targets[m[1]] = strings.TrimSpace(m[2])
		}
	}
	for _, want := range []string{"build", "image-build", "lambda", "test", "ci"} {
		if _, ok := targets[want]; !ok {
			t.Errorf("Makefile lacks target %s", want)
		}
	}
	if !strings.Contains(targets["build"], "image-build") {
		t.Error("build must be image-build, so CI builds what the image holds")
	}
	if !strings.Contains(targets["ci"], "build") || !strings.Contains(targets["ci"], "test") {
		t.Errorf("ci = %q, want build and test", targets["ci"])
	}
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "-X main.commit="} {
		if !strings.Contains(string(data), flag) {
			t.Errorf("Makefile build lacks %s", flag)
		}
	}
}

// ---- docker/compose.yaml ----

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Volumes     []string `yaml:"volumes"`
	StopGrace   string   `yaml:"stop_grace_period"`
	ReadOnly    bool     `yaml:"read_only"`
	Entrypoint  []string `yaml:"entrypoint"`
	HealthCheck *struct {
		Disable bool `yaml:"disable"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestComposeStack(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, want := range []string{"kinesis", "dynamodb", "init-stream", "connector", "devnode", "generator", "prometheus"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	for name, s := range c.Services {
		switch {
		case s.Build != nil:
			// Built from this repository's Dockerfile (checked above).
		case s.Image == "":
			t.Errorf("service %s has neither image nor build", name)
		case !pinned(s.Image):
			t.Errorf("service %s image %s is not pinned to an exact version", name, s.Image)
		}
	}
	known := knownEnv()
	conn := c.Services["connector"]
	for _, svc := range []string{"connector", "generator"} {
		for name := range c.Services[svc].Environment {
			if !known[name] {
				t.Errorf("%s environment %s is not a setting or an AWS SDK variable", svc, name)
			}
		}
	}
	env := conn.Environment
	if env["AWS_ENDPOINT_URL_KINESIS"] == "" || env["AWS_ENDPOINT_URL_DYNAMODB"] == "" || env["AWS_REGION"] == "" || env["AWS_ACCESS_KEY_ID"] == "" {
		t.Error("connector must reach the emulators through AWS_ENDPOINT_URL_* with a region and dummy credentials")
	}
	stream := env["APIGW_CONNECTOR_KINESIS_STREAM"]
	if stream == "" || c.Services["init-stream"].Environment["STREAM"] != stream {
		t.Errorf("init-stream creates %q, connector reads %q", c.Services["init-stream"].Environment["STREAM"], stream)
	}
	if got := flagValue(c.Services["generator"].Command, "--stream"); got != stream {
		t.Errorf("generator writes to %q, connector reads %q", got, stream)
	}
	if conn.DependsOn["init-stream"].Condition != "service_completed_successfully" {
		t.Error("connector must wait for init-stream to complete")
	}
	if !conn.ReadOnly {
		t.Error("connector should run with a read-only root, as in ECS")
	}
	grace := kinesis.DefaultConfig().ShutdownGrace
	if v := env["APIGW_CONNECTOR_KINESIS_SHUTDOWN_GRACE"]; v != "" {
		grace, _ = time.ParseDuration(v)
	}
	if d, err := time.ParseDuration(conn.StopGrace); err != nil || d <= grace {
		t.Errorf("stop_grace_period %q must exceed the shutdown grace %s", conn.StopGrace, grace)
	}
	devListen := flagValue(c.Services["devnode"].Command, "--listen")
	if !strings.HasPrefix(devListen, "0.0.0.0:") {
		t.Errorf("devnode listens on %q: other containers cannot reach it", devListen)
	}
	if want := "http://devnode:" + port(t, devListen); env["APIGW_CONNECTOR_NODE_URL"] != want {
		t.Errorf("connector node URL %q, want %s", env["APIGW_CONNECTOR_NODE_URL"], want)
	}

	// The generator's flags exist, once the command has landed.
	if src, err := os.ReadFile("../cmd/apigw-connector/generate.go"); err == nil {
		for _, a := range c.Services["generator"].Command {
			if f, ok := strings.CutPrefix(a, "--"); ok {
				f, _, _ = strings.Cut(f, "=")
				if !strings.Contains(string(src), `"`+f+`"`) {
					t.Errorf("generator flag --%s is not defined in cmd/apigw-connector/generate.go", f)
				}
			}
		}
	}

	// Prometheus scrapes the connector's metrics port.
	var promCfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	data, err := os.ReadFile("../docker/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &promCfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	metricsPort := port(t, env["APIGW_CONNECTOR_METRICS_ADDR"])
	var scraped bool
	for _, sc := range promCfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			scraped = scraped || slices.Contains(st.Targets, "connector:"+metricsPort)
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape connector:%s", metricsPort)
	}
	if !slices.ContainsFunc(c.Services["prometheus"].Volumes, func(v string) bool { return strings.HasPrefix(v, "./prometheus.yml:") }) {
		t.Error("prometheus service does not mount docker/prometheus.yml")
	}
}

// The compose stack runs the kinesis-mock release the tests run (the npm
// emulator kinesis-local is the same project, published at the same version).
func TestComposeKinesisMockMatchesTheTestEmulator(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile("../scripts/install-emulators.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KINESIS_LOCAL_VERSION=([0-9][0-9A-Za-z.\-]*)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/install-emulators.sh pins no KINESIS_LOCAL_VERSION")
	}
	image := loadCompose(t).Services["kinesis"].Image
	repo, tag, _ := strings.Cut(image, ":")
	if repo != "ghcr.io/etspaceman/kinesis-mock" || tag != string(m[1]) {
		t.Fatalf("compose runs %s, the tests kinesis-local %s: use ghcr.io/etspaceman/kinesis-mock:%s", image, m[1], m[1])
	}
}

// The README gives one command to bring the stack up, names Compose v2 as
// the prerequisite, and the compose file's own header agrees.
func TestReadmeHasOneComposeUpCommand(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile("../docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	up := regexp.MustCompile(`docker[ -]compose [^\n` + "`" + `]*\bup\b[^\n` + "`" + `]*`)
	cmds := map[string]bool{}
	for _, c := range up.FindAllString(string(readme)+string(compose), -1) {
		cmds[strings.TrimSpace(c)] = true
	}
	if len(cmds) != 1 {
		t.Fatalf("README and compose.yaml give %d different up commands, want 1: %v", len(cmds), cmds)
	}
	for c := range cmds {
		if !strings.HasPrefix(c, "docker compose ") {
			t.Errorf("%q is not Compose v2's `docker compose`", c)
		}
	}
	if !strings.Contains(string(readme), "Compose v2") || !strings.Contains(string(compose), "Compose v2") {
		t.Error("README or compose.yaml does not name Compose v2 as the prerequisite")
	}
}
