package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The test command says what runs before each silent stretch: every stage,
// and every fuzz target (each compiles for up to a minute before it prints).
func TestTestScriptAnnouncesEveryStageAndFuzzTarget(t *testing.T) {
	t.Parallel()
	script := filepath.Join("..", "scripts", "test.sh")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	// Without a dry run the script would run the whole suite from inside it.
	if !strings.Contains(string(src), "DRY_RUN") {
		t.Fatal("scripts/test.sh has no DRY_RUN mode")
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "DRY_RUN=1", "FUZZTIME=1s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	text := string(out)
	for _, stage := range []string{"go vet", "staticcheck", "cfn-lint", "go test -race", "fuzz"} {
		if !regexp.MustCompile(`(?m)^== ` + regexp.QuoteMeta(stage) + ` \(\d\d:\d\d:\d\d\): \S`).MatchString(text) {
			t.Errorf("stage %q is not announced with its time and what it does:\n%s", stage, text)
		}
	}
	if i, j := strings.Index(text, "== go vet"), strings.Index(text, "$ go vet ./..."); i < 0 || j < i {
		t.Errorf("go vet runs before it is announced:\n%s", text)
	}
	// Every fuzz target of the repository, found independently of the script.
	fuzz := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	var targets []string
	for _, root := range []string{"pkg", "cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join("..", root), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range fuzz.FindAllStringSubmatch(string(b), -1) {
				targets = append(targets, m[1]+" (./"+filepath.ToSlash(filepath.Dir(strings.TrimPrefix(p, "../")))+")")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(targets) == 0 {
		t.Fatal("found no fuzz targets")
	}
	for _, tg := range targets {
		if !regexp.MustCompile(`(?m)^-- \[\d+/\d+\] ` + regexp.QuoteMeta(tg) + ` from \d\d:\d\d:\d\d: building`).MatchString(text) {
			t.Errorf("fuzz target %s is not announced before it builds:\n%s", tg, text)
		}
	}
}
