package deploy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/source/firehose"
)

// fargateValid is the Fargate task size table (Amazon ECS developer guide,
// "Task CPU and memory"): memory in MiB for each CPU value.
func fargateValid(cpu, mem int) bool {
	between := func(lo, hi, step int) bool { return mem >= lo && mem <= hi && (mem-lo)%step == 0 }
	switch cpu {
	case 256:
		return mem == 512 || mem == 1024 || mem == 2048
	case 512:
		return between(1024, 4096, 1024)
	case 1024:
		return between(2048, 8192, 1024)
	case 2048:
		return between(4096, 16384, 1024)
	case 4096:
		return between(8192, 30720, 1024)
	case 8192:
		return between(16384, 61440, 4096)
	case 16384:
		return between(32768, 122880, 8192)
	}
	return false
}

var ecsBase = map[string]string{"LogGroupName": "API-Gateway-Access-Logs/prod"}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// Every TaskCpu x TaskMemory pair the parameters allow passes the template's
// Rules exactly when Fargate runs it.
func TestFargateSizeRules(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "kinesis-ecs.yaml")
	var rejected, accepted int
	for _, c := range l.param["TaskCpu"].AllowedValues {
		for _, m := range l.param["TaskMemory"].AllowedValues {
			cpu, _ := strconv.Atoi(fmt.Sprint(c))
			mem, _ := strconv.Atoi(fmt.Sprint(m))
			fails := newStack(t, "kinesis-ecs.yaml", with(ecsBase, "TaskCpu", fmt.Sprint(c), "TaskMemory", fmt.Sprint(m))).ruleFailures()
			if ok := len(fails) == 0; ok != fargateValid(cpu, mem) {
				t.Errorf("TaskCpu %d TaskMemory %d: Rules accept=%v, Fargate valid=%v (%v)", cpu, mem, ok, !ok, fails)
			}
			if len(fails) == 0 {
				accepted++
			} else {
				rejected++
			}
		}
	}
	if accepted == 0 || rejected == 0 {
		t.Errorf("accepted %d, rejected %d pairs: the rules decide nothing", accepted, rejected)
	}
	// The parameter defaults are a valid size.
	if f := newStack(t, "kinesis-ecs.yaml", ecsBase).ruleFailures(); len(f) != 0 {
		t.Errorf("defaults fail the Rules: %v", f)
	}
}

// MinTasks may never exceed MaxTasks, over the parameters' whole ranges.
func TestMinTasksAtMostMaxTasksRule(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "kinesis-ecs.yaml")
	minP, maxP := l.param["MinTasks"], l.param["MaxTasks"]
	for lo := int(*minP.MinValue); lo <= int(*minP.MaxValue); lo++ {
		for hi := int(*maxP.MinValue); hi <= int(*maxP.MaxValue); hi++ {
			s := newStack(t, "kinesis-ecs.yaml", with(ecsBase, "MinTasks", strconv.Itoa(lo), "MaxTasks", strconv.Itoa(hi)))
			fails := s.ruleFailures()
			if ok := len(fails) == 0; ok != (lo <= hi) {
				t.Fatalf("MinTasks %d MaxTasks %d: Rules accept=%v (%v)", lo, hi, ok, fails)
			}
		}
	}
}

func TestLogGroupRequiredUnlessAccountScope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tmpl   string
		params map[string]string
		ok     bool
	}{
		{"kinesis-ecs.yaml", map[string]string{"LogGroupName": ""}, false},
		{"kinesis-ecs.yaml", map[string]string{"LogGroupName": "", "SubscriptionScope": "Account"}, true},
		{"kinesis-ecs.yaml", map[string]string{"LogGroupName": "g"}, true},
		{"firehose.yaml", map[string]string{"LogGroupName": ""}, false},
		{"firehose.yaml", map[string]string{"LogGroupName": "", "SubscriptionScope": "Account"}, true},
		{"source-account.yaml", map[string]string{"SubscriptionScope": "LogGroups"}, false},
		{"source-account.yaml", map[string]string{"SubscriptionScope": "LogGroups", "LogGroupName": "g"}, true},
		{"source-account.yaml", map[string]string{}, true},
		{"central-destination.yaml", map[string]string{}, false},
		{"central-destination.yaml", map[string]string{"SenderAccountIds": "111111111111"}, true},
		{"central-destination.yaml", map[string]string{"OrganizationId": "o-a1b2c3d4e5"}, true},
		{"central-destination.yaml", map[string]string{"OrganizationId": "o-a1b2c3d4e5", "SenderAccountIds": "111111111111"}, false},
	}
	for _, c := range cases {
		fails := newStack(t, c.tmpl, c.params).ruleFailures()
		if ok := len(fails) == 0; ok != c.ok {
			t.Errorf("%s %v: Rules accept=%v, want %v (%v)", c.tmpl, c.params, ok, c.ok, fails)
		}
	}
}

var notInRE = regexp.MustCompile(`^LogGroupName NOT IN \[(.*)\]$`)

// parseNotIn returns the log groups of a `LogGroupName NOT IN [...]` criterion.
func parseNotIn(t *testing.T, crit string) []string {
	t.Helper()
	m := notInRE.FindStringSubmatch(crit)
	if m == nil {
		t.Fatalf("SelectionCriteria %q is not LogGroupName NOT IN [...] (the only operator AWS supports)", crit)
	}
	var names []string
	if err := json.Unmarshal([]byte("["+m[1]+"]"), &names); err != nil {
		t.Fatalf("SelectionCriteria %q: list is not JSON strings: %v", crit, err)
	}
	return names
}

func policyDoc(t *testing.T, res map[string]any) map[string]any {
	t.Helper()
	if got := path(res, "Properties", "PolicyType"); got != "SUBSCRIPTION_FILTER_POLICY" {
		t.Errorf("PolicyType %v, want SUBSCRIPTION_FILTER_POLICY", got)
	}
	if got := path(res, "Properties", "Scope"); got != "ALL" {
		t.Errorf("Scope %v, want ALL", got)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(path(res, "Properties", "PolicyDocument"))), &doc); err != nil {
		t.Fatalf("PolicyDocument is not JSON: %v", err)
	}
	return doc
}

// SubscriptionScope Account replaces the per-group filters with one account
// policy to the template's own destination, excluding the pipeline's own log
// groups (recursion) and the listed ones.
func TestAccountSubscriptionPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tmpl       string
		params     map[string]string
		dest, role string
		ownGroups  []string // log group resources that must be excluded
	}{
		{"kinesis-ecs.yaml", map[string]string{"SubscriptionScope": "Account", "LogGroupName": ""},
			"{GetAtt:Stream.Arn}", "{GetAtt:LogsToKinesisRole.Arn}", []string{"ConnectorLogGroup"}},
		{"firehose.yaml", map[string]string{"SubscriptionScope": "Account", "LogGroupName": ""},
			"{GetAtt:DeliveryStream.Arn}", "{GetAtt:LogsToFirehoseRole.Arn}", []string{"DeliveryLogGroup"}},
	}
	for _, c := range cases {
		t.Run(c.tmpl, func(t *testing.T) {
			s := newStack(t, c.tmpl, c.params)
			res := s.resources()
			for id, r := range res {
				if r["Type"] == "AWS::Logs::SubscriptionFilter" {
					t.Errorf("%s exists with SubscriptionScope Account: the account policy already covers every group (both would deliver each line twice)", id)
				}
			}
			pol, ok := res["AccountSubscriptionPolicy"]
			if !ok || pol["Type"] != "AWS::Logs::AccountPolicy" {
				t.Fatal("no AWS::Logs::AccountPolicy with SubscriptionScope Account")
			}
			doc := policyDoc(t, pol)
			want := map[string]any{"DestinationArn": c.dest, "RoleArn": c.role, "FilterPattern": s.params["AccountFilterPattern"], "Distribution": "Random"}
			if !reflect.DeepEqual(doc, want) {
				t.Errorf("PolicyDocument %v, want %v", doc, want)
			}
			excluded := parseNotIn(t, fmt.Sprint(path(pol, "Properties", "SelectionCriteria")))
			for _, g := range c.ownGroups {
				name := fmt.Sprint(path(res[g], "Properties", "LogGroupName"))
				if !contains(excluded, name) {
					t.Errorf("the policy does not exclude %s (%s): the pipeline's own logs would feed on themselves", g, name)
				}
			}
			// Listed exclusions are added, each as its own name.
			s2 := newStack(t, c.tmpl, with(c.params, "ExcludedLogGroupNames", "/aws/lambda/app,/aws/lambda/other"))
			ex2 := parseNotIn(t, fmt.Sprint(path(s2.resources()["AccountSubscriptionPolicy"], "Properties", "SelectionCriteria")))
			if !contains(ex2, "/aws/lambda/app") || !contains(ex2, "/aws/lambda/other") || len(ex2) != len(excluded)+2 {
				t.Errorf("with ExcludedLogGroupNames: NOT IN %v, want %v plus both listed groups", ex2, excluded)
			}

			// The default scope keeps the per-group filters and no account policy.
			s3 := newStack(t, c.tmpl, map[string]string{"LogGroupName": "API-Gateway-Access-Logs/prod"})
			res3 := s3.resources()
			if _, ok := res3["AccountSubscriptionPolicy"]; ok {
				t.Error("account policy created with SubscriptionScope LogGroups")
			}
			if _, ok := res3["SubscriptionFilter1"]; !ok {
				t.Error("no SubscriptionFilter1 with SubscriptionScope LogGroups")
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// destinationPolicy renders central-destination.yaml and returns the
// destination's access policy and its role's trust statement.
func destinationPolicy(t *testing.T, params map[string]string) (map[string]any, map[string]any, map[string]map[string]any) {
	t.Helper()
	s := newStack(t, "central-destination.yaml", params)
	if f := s.ruleFailures(); len(f) != 0 {
		t.Fatalf("%v: %v", params, f)
	}
	res := s.resources()
	d := res["Destination"]
	var pol map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(path(d, "Properties", "DestinationPolicy"))), &pol); err != nil {
		t.Fatalf("DestinationPolicy is not JSON: %v", err)
	}
	trust := obj(path(res["DestinationRole"], "Properties", "AssumeRolePolicyDocument", "Statement", "0"))
	return pol, trust, res
}

func TestCentralDestination(t *testing.T) {
	t.Parallel()
	const central = "999999999999" // pseudo AWS::AccountId
	destARN := "arn:aws:logs:eu-west-1:" + central + ":destination:apigw-access-logs"
	wantActions := []string{"logs:PutAccountPolicy", "logs:PutSubscriptionFilter"}

	check := func(t *testing.T, pol map[string]any) map[string]any {
		t.Helper()
		stmts := list(pol["Statement"])
		if pol["Version"] != "2012-10-17" || len(stmts) != 1 {
			t.Fatalf("destination policy %v: want one statement, version 2012-10-17", pol)
		}
		st := obj(stmts[0])
		acts := strs(st["Action"])
		sort.Strings(acts)
		if st["Effect"] != "Allow" || !reflect.DeepEqual(acts, wantActions) || st["Resource"] != destARN {
			t.Errorf("statement %v: want Allow %v on %s only", st, wantActions, destARN)
		}
		return st
	}

	t.Run("accounts", func(t *testing.T) {
		pol, trust, res := destinationPolicy(t, map[string]string{"SenderAccountIds": "111111111111,222222222222"})
		st := check(t, pol)
		if got := strs(path(st, "Principal", "AWS")); !reflect.DeepEqual(got, []string{"111111111111", "222222222222"}) {
			t.Errorf("principals %v, want exactly the listed accounts", st["Principal"])
		}
		if st["Condition"] != nil {
			t.Errorf("unexpected condition %v", st["Condition"])
		}
		// Trust: CloudWatch Logs for the senders and this account, this region only.
		want := map[string]any{
			"ArnLike":    map[string]any{"aws:SourceArn": []any{"arn:*:logs:*:111111111111:*", "arn:*:logs:*:222222222222:*", "arn:*:logs:*:" + central + ":*"}},
			"StringLike": map[string]any{"aws:SourceArn": "arn:aws:logs:eu-west-1:*"},
		}
		if !reflect.DeepEqual(trust["Condition"], want) {
			t.Errorf("destination role trust condition %v, want %v", trust["Condition"], want)
		}
		checkDestinationRole(t, res)
	})
	t.Run("organization", func(t *testing.T) {
		pol, trust, res := destinationPolicy(t, map[string]string{"OrganizationId": "o-a1b2c3d4e5"})
		st := check(t, pol)
		// AWS's documented organization form: "*" is only allowed with
		// aws:PrincipalOrgID limiting it to the organization.
		want := map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": []any{"o-a1b2c3d4e5"}}}
		if st["Principal"] != "*" || !reflect.DeepEqual(st["Condition"], want) {
			t.Errorf("principal %v condition %v, want \"*\" limited by %v", st["Principal"], st["Condition"], want)
		}
		wantTrust := map[string]any{"StringEquals": map[string]any{"aws:SourceOrgID": "o-a1b2c3d4e5"}}
		if !reflect.DeepEqual(trust["Condition"], wantTrust) {
			t.Errorf("destination role trust condition %v, want %v", trust["Condition"], wantTrust)
		}
		checkDestinationRole(t, res)
	})
}

func checkDestinationRole(t *testing.T, res map[string]map[string]any) {
	t.Helper()
	d := res["Destination"]
	if path(d, "Properties", "TargetArn") != "{Param:StreamArn}" || path(d, "Properties", "RoleArn") != "{GetAtt:DestinationRole.Arn}" {
		t.Errorf("destination targets %v with %v, want the StreamArn parameter and DestinationRole", path(d, "Properties", "TargetArn"), path(d, "Properties", "RoleArn"))
	}
	trust := obj(path(res["DestinationRole"], "Properties", "AssumeRolePolicyDocument", "Statement", "0"))
	if !reflect.DeepEqual(strs(path(trust, "Principal", "Service")), []string{"logs.amazonaws.com"}) || trust["Action"] != "sts:AssumeRole" {
		t.Errorf("destination role trusts %v", trust)
	}
}

// Every policy statement in every template: a "*" principal only with an
// aws:PrincipalOrgID condition (or as the TLS-only Deny of the backup bucket).
func TestNoOpenPrincipals(t *testing.T) {
	t.Parallel()
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch c := v.(type) {
		case map[string]any:
			if p, ok := c["Principal"]; ok {
				open := p == "*" || contains(strs(path(p, "AWS")), "*")
				orgLimited := path(c, "Condition", "StringEquals", "aws:PrincipalOrgID") != nil
				deny := c["Effect"] == "Deny"
				if open && !orgLimited && !deny {
					t.Errorf("%s: statement %v allows any principal", where, c)
				}
			}
			for k, e := range c {
				walk(where+"."+k, e)
			}
		case []any:
			for i, e := range c {
				walk(fmt.Sprintf("%s[%d]", where, i), e)
			}
		case string:
			if strings.HasPrefix(strings.TrimSpace(c), "{") && strings.Contains(c, "Principal") {
				var doc any
				if err := json.Unmarshal([]byte(c), &doc); err != nil {
					t.Errorf("%s: policy string is not JSON: %v", where, err)
				}
				walk(where+"(json)", doc)
			}
		}
	}
	for _, name := range templateNames {
		for _, params := range []map[string]string{{}, {"OrganizationId": "o-a1b2c3d4e5"}, {"SenderAccountIds": "111111111111"}} {
			if name != "central-destination.yaml" && len(params) > 0 {
				continue
			}
			s := newStack(t, name, params)
			for id, r := range s.resources() {
				walk(name+"/"+id, r)
			}
		}
	}
}

func TestSourceAccount(t *testing.T) {
	t.Parallel()
	const dest = "arn:aws:logs:eu-west-1:123456789012:destination:apigw-access-logs"
	base := map[string]string{"CentralAccountId": "123456789012"}

	t.Run("organization, account policy (the StackSet default)", func(t *testing.T) {
		res := newStack(t, "source-account.yaml", base).resources()
		if _, ok := res["SubscriptionRole"]; !ok {
			t.Fatal("no SubscriptionRole: an organization-wide destination policy needs a role in every subscription")
		}
		doc := policyDoc(t, res["AccountSubscriptionPolicy"])
		want := map[string]any{"DestinationArn": dest, "RoleArn": "{GetAtt:SubscriptionRole.Arn}",
			"FilterPattern": "{ $.httpMethod = * && ($.status = * || $.status > 0) }", "Distribution": "Random"}
		if !reflect.DeepEqual(doc, want) {
			t.Errorf("PolicyDocument %v, want %v", doc, want)
		}
		if c := path(res["AccountSubscriptionPolicy"], "Properties", "SelectionCriteria"); c != nil {
			t.Errorf("SelectionCriteria %v with no exclusions", c)
		}
		for id, r := range res {
			if r["Type"] == "AWS::Logs::SubscriptionFilter" {
				t.Errorf("%s with SubscriptionScope Account", id)
			}
		}
	})
	t.Run("accounts, named filters", func(t *testing.T) {
		res := newStack(t, "source-account.yaml", with(base, "DestinationAccess", "Accounts", "SubscriptionScope", "LogGroups",
			"LogGroupName", "API-Gateway-Access-Logs/a", "LogGroupName2", "API-Gateway-Access-Logs/b")).resources()
		if _, ok := res["SubscriptionRole"]; ok {
			t.Error("SubscriptionRole created for an account-list destination policy")
		}
		if _, ok := res["AccountSubscriptionPolicy"]; ok {
			t.Error("account policy created with SubscriptionScope LogGroups")
		}
		groups := map[string]bool{}
		for _, id := range []string{"SubscriptionFilter1", "SubscriptionFilter2"} {
			p := obj(res[id]["Properties"])
			if p["DestinationArn"] != dest || p["RoleArn"] != nil || p["FilterName"] != "apigw-connector" {
				t.Errorf("%s: %v, want the central destination of this region, no role, named apigw-connector", id, p)
			}
			groups[fmt.Sprint(p["LogGroupName"])] = true
		}
		if !groups["API-Gateway-Access-Logs/a"] || !groups["API-Gateway-Access-Logs/b"] {
			t.Errorf("filters on %v", groups)
		}
	})
	t.Run("organization, named filter", func(t *testing.T) {
		res := newStack(t, "source-account.yaml", with(base, "SubscriptionScope", "LogGroups", "LogGroupName", "g")).resources()
		if p := obj(res["SubscriptionFilter1"]["Properties"]); p["RoleArn"] != "{GetAtt:SubscriptionRole.Arn}" {
			t.Errorf("filter role %v, want SubscriptionRole", p["RoleArn"])
		}
		if _, ok := res["SubscriptionFilter2"]; ok {
			t.Error("SubscriptionFilter2 without LogGroupName2")
		}
	})
}

// The Firehose buffer, base64-encoded into the JSON body Firehose POSTs,
// must fit the connector's default firehose.max_body_bytes, and the cap must
// be the largest buffer that does.
func TestFirehoseBufferFitsConnectorBody(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "firehose.yaml")
	maxBody := firehose.DefaultConfig().MaxBodyBytes
	// Records are at least as long as the shortest access-log line the
	// connector accepts (one record per line with message extraction; a
	// gzip document of the whole envelope otherwise, which is longer).
	minRecord := int64(1 << 30)
	for _, al := range documentedAccessLines() {
		if al.call && int64(len(al.line)) < minRecord {
			minRecord = int64(len(al.line))
		}
	}
	fits := func(mib int64) bool { return firehoseBodyBytes(mib<<20, minRecord) <= maxBody }
	largest := int64(0)
	for mib := int64(1); mib <= 64; mib++ { // Firehose's own range is 1-64 MiB
		if fits(mib) {
			largest = mib
		}
	}
	p := l.param["BufferSizeMiB"]
	if p.MaxValue == nil {
		t.Fatal("BufferSizeMiB has no MaxValue")
	}
	if int64(*p.MaxValue) != largest {
		t.Fatalf("BufferSizeMiB MaxValue %v, want %d: the largest buffer whose body (records of >= %d bytes, base64 and JSON) fits firehose.max_body_bytes %d",
			p.MaxValue, largest, minRecord, maxBody)
	}
	if !fits(int64(*p.MaxValue)) {
		t.Errorf("a %v MiB buffer makes a body of %d bytes > %d", *p.MaxValue, firehoseBodyBytes(int64(*p.MaxValue)<<20, minRecord), maxBody)
	}
	if fits(64) {
		t.Error("the body model is too lax: a 64 MiB buffer base64-encoded cannot fit 64 MiB")
	}
}

// firehoseBodyBytes bounds the JSON body for a buffer of b bytes made of
// records of at least r bytes: {"requestId":"<uuid>","timestamp":<ms>,
// "records":[{"data":"<base64>"},...]}.
func firehoseBodyBytes(b, r int64) int64 {
	n := (b + r - 1) / r
	envelope := int64(len(`{"requestId":"","timestamp":,"records":[]}`)) + 36 + 13
	perRecord := int64(len(`{"data":""},`))
	base64 := (4*b + 8*n + 2) / 3 // sum of 4*ceil(x/3) <= 4(b + 2n)/3
	return envelope + n*perRecord + base64
}

// Stateful resources survive a stack delete or a replacing update.
func TestStatefulResourcesRetained(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"kinesis-ecs.yaml": {"Stream", "LeaseTable", "ConnectorLogGroup"},
		"firehose.yaml":    {"AccessKeySecret", "DeliveryLogGroup", "BackupBucket"},
		"lambda.yaml":      {"FailureQueue"},
	}
	for name, ids := range want {
		raw := rawTemplate(t, name)
		for _, id := range ids {
			r := obj(obj(raw["Resources"])[id])
			if r["DeletionPolicy"] != "Retain" && r["DeletionPolicy"] != "Snapshot" {
				t.Errorf("%s %s: DeletionPolicy %v, want Retain (or Snapshot)", name, id, r["DeletionPolicy"])
			}
			if r["UpdateReplacePolicy"] != r["DeletionPolicy"] {
				t.Errorf("%s %s: UpdateReplacePolicy %v, want %v", name, id, r["UpdateReplacePolicy"], r["DeletionPolicy"])
			}
		}
	}
}

// A DesiredCount in the template resets the auto-scaled count on every
// stack update.
func TestServiceLeavesDesiredCountToAutoScaling(t *testing.T) {
	t.Parallel()
	svc := newStack(t, "kinesis-ecs.yaml", ecsBase).resources()["Service"]
	if d := path(svc, "Properties", "DesiredCount"); d != nil {
		t.Errorf("Service DesiredCount %v: every update would reset the count auto scaling set", d)
	}
}

// `aws cloudformation deploy --template-file` sends the template inline,
// which CloudFormation accepts up to 51,200 bytes (larger ones need an S3
// bucket, which the README's commands do not pass).
func TestTemplatesFitInlineBody(t *testing.T) {
	t.Parallel()
	for _, name := range templateNames {
		if l := loadTemplate(t, name); len(l.text) > 51200 {
			t.Errorf("%s is %d bytes, above CloudFormation's 51,200-byte inline template limit", name, len(l.text))
		}
	}
}
