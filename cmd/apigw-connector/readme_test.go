package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every README snippet calls the binary one way, `apigw-connector` with
// bin/ on PATH, the README says how before the snippets of each section a new
// user may start at, and every command and flag a snippet uses exists.
func TestReadmeSnippetsRunAsWritten(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	const pathSetup = "export PATH=$PWD/bin:$PATH"
	for _, sec := range []string{"## The two commands that matter", "## Quick start", "## Commands"} {
		i := strings.Index(readme, sec)
		if i < 0 {
			t.Fatalf("README has no section %q", sec)
		}
		body := readme[i:]
		if j := strings.Index(body[len(sec):], "\n## "); j >= 0 {
			body = body[:len(sec)+j]
		}
		// The first snippet of the section that runs the binary.
		first := regexp.MustCompile("(?m)^```sh\n(?:[^`]*\n)?(?:[A-Z_]+=\\S+ )?apigw-connector ").FindStringIndex(body)
		if first != nil && !strings.Contains(body[:first[0]], pathSetup) {
			t.Errorf("section %q runs apigw-connector in a snippet before saying %q", sec, pathSetup)
		}
	}
	blocks := regexp.MustCompile("(?s)```(?:sh|bash)\n(.*?)```").FindAllStringSubmatch(readme, -1)
	call := regexp.MustCompile(`(?:^|[\s;&|(])((?:\./)?(?:bin/)?apigw-connector|go run \./cmd/apigw-connector) ([a-z][a-z-]*)((?: [^|&>;#]*)?)`)
	flag := regexp.MustCompile(`(?:^| )--([a-z][a-z0-9-]*)`)
	helps := map[string]string{}
	seen := 0
	for _, blk := range blocks {
		for _, line := range strings.Split(strings.ReplaceAll(blk[1], "\\\n", " "), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range call.FindAllStringSubmatch(line, -1) {
				if m[1] != "apigw-connector" {
					t.Errorf("snippet calls %q, not apigw-connector (bin/ on PATH): %s", m[1], line)
				}
				sub := m[2]
				if strings.Contains(m[3], "[--") {
					continue // a synopsis, not a command
				}
				seen++
				help, ok := helps[sub]
				if !ok {
					code, out, errs := runCmd(t, sub, "-h")
					if code != 0 {
						t.Errorf("snippet command %q does not exist (%s -h: exit %d): %s", sub, sub, code, line)
						continue
					}
					help = out + errs
					helps[sub] = help
				}
				for _, f := range flag.FindAllStringSubmatch(m[3], -1) {
					if !strings.Contains(help, "-"+f[1]+" ") && !strings.Contains(help, "-"+f[1]+"\n") {
						t.Errorf("snippet uses %s --%s, which %s -h does not list: %s", sub, f[1], sub, line)
					}
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("found only %d snippet commands: the pattern no longer matches the README", seen)
	}
}
