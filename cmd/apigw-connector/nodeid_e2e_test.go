package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// clientSetLine is a documented-format line whose requestId the client chose
// (X-Amzn-RequestId): distinct calls share it.
func clientSetLine(path string, extra string) string {
	return fmt.Sprintf(`{"requestId":"client-set-id","httpMethod":"GET","path":%q,"status":"200","sourceIp":"203.0.113.7","requestTimeEpoch":"1795515330000"%s}`, path, extra)
}

func writeInput(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func inventoryPaths(dn *devnode.Server) string {
	var s []string
	for _, ep := range dn.Inventory() {
		s = append(s, ep.Host+ep.Path)
	}
	return strings.Join(s, ",")
}

// TestReplaySharedRequestIDsAreDistinctCalls: calls sharing a requestId all
// reach the node and its inventory, from a CloudWatch Logs export and a lines
// file; replaying the same input again leaves the inventory unchanged and
// exits 0.
func TestReplaySharedRequestIDsAreDistinctCalls(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	host := `,"domainName":"api.example.com"`
	gz := writeInput(t, "export.json.gz", traffic.GzipEnvelope("/aws/apigateway/shop", "s", []traffic.LogEvent{
		{ID: fmt.Sprintf("%056d", 1), Timestamp: 1795515330000, Message: clientSetLine("/a", host)},
		{ID: fmt.Sprintf("%056d", 2), Timestamp: 1795515330000, Message: clientSetLine("/b", host)},
	}))
	lines := writeInput(t, "access.log", []byte(clientSetLine("/c", host)+"\n"+clientSetLine("/d", host)+"\n"))
	cfg := writeConfig(t, url, "")

	code, out, errs := runCmd(t, "replay", "--config", cfg, gz, lines)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	const want = "api.example.com/a,api.example.com/b,api.example.com/c,api.example.com/d"
	if got := inventoryPaths(dn); got != want || dn.Stats().Completed != 4 {
		t.Fatalf("inventory %s (%d calls), want %s", got, dn.Stats().Completed, want)
	}
	inv := dn.Inventory()

	code, out, errs = runCmd(t, "replay", "--config", cfg, gz, lines)
	if code != 0 {
		t.Fatalf("second replay: exit %d\n%s\n%s", code, out, errs)
	}
	if got := dn.Inventory(); !testenv.SameCalls(got, inv) {
		t.Fatalf("inventory changed by replaying the same input:\n%+v\n%+v", inv, got)
	}
	if st := dn.Stats(); st.Completed != 4 || st.Duplicates != 4 || st.OwnHost != 0 {
		t.Fatalf("node stats %+v: want the second replay's 4 calls refused as duplicates of the first", st)
	}
}

// TestReplayWithoutHostNeverSendsTheNodesAddress: AWS's example formats have
// no domainName; the host comes from the settings or the apiId, or the call
// is skipped, and the node never sees its own address as the API's host.
func TestReplayWithoutHostNeverSendsTheNodesAddress(t *testing.T) {
	t.Parallel()
	// AWS's example REST format (no domainName, no path: resourcePath).
	awsREST := func(id, res, extra string) string {
		return `{"requestId":"` + id + `","extendedRequestId":"Q8NnAiztIAMEV4w=","ip":"203.0.113.7","caller":"-","user":"-","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"GET","resourcePath":"` + res + `","status":"200","protocol":"HTTP/1.1","responseLength":"12"` + extra + "}\n"
	}
	tests := []struct {
		name     string
		config   string
		input    string
		wantCode int
		wantInv  string
		wantOut  string
	}{
		{"no setting: skipped", "", awsREST("r1", "/pets", "") + awsREST("r2", "/orders", ""), 1, "", "no_host=2"},
		{"default host", "access_log:\n  default_host: pets.example.com\n", awsREST("r1", "/pets", ""), 0, "pets.example.com/pets", "delivered:       1"},
		{"apiId and region", "access_log:\n  region: eu-west-1\n", awsREST("r1", "/pets", `,"apiId":"a1b2c3d4e5"`), 0,
			"a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/pets", "delivered:       1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
			code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, tc.config), writeInput(t, "a.log", []byte(tc.input)))
			if st := dn.Stats(); st.OwnHost != 0 {
				t.Fatalf("the node got its own address as a host %d times (%s)", st.OwnHost, st.OwnHostSeen)
			}
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("exit %d, want %d and %q in the summary\n%s\n%s", code, tc.wantCode, tc.wantOut, out, errs)
			}
			if got := inventoryPaths(dn); got != tc.wantInv {
				t.Fatalf("inventory %q, want %q", got, tc.wantInv)
			}
			if tc.wantCode != 0 && !strings.Contains(errs, `\"domainName\":\"$context.domainName\"`) && !strings.Contains(errs, `"domainName":"$context.domainName"`) {
				t.Fatalf("no warning with the fix:\n%s", errs)
			}
		})
	}
}
