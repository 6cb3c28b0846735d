package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"

	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/source/kinesis"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

func TestTemplatesParse(t *testing.T) {
	t.Parallel()
	for _, name := range templateNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := loadTemplate(t, name)
			if l.tmpl.AWSTemplateFormatVersion != "2010-09-09" {
				t.Errorf("AWSTemplateFormatVersion = %q, want 2010-09-09", l.tmpl.AWSTemplateFormatVersion)
			}
			if strings.TrimSpace(l.tmpl.Description) == "" {
				t.Error("template has no Description")
			}
			if len(l.tmpl.Resources) == 0 {
				t.Fatal("template has no resources")
			}
			// Conditions used by resources must be declared.
			for id, r := range obj(l.tree["Resources"]) {
				if c, ok := obj(r)["Condition"].(string); ok {
					if _, ok := obj(l.tree["Conditions"])[c]; !ok {
						t.Errorf("resource %s uses undeclared condition %s", id, c)
					}
				}
			}
		})
	}
}

// Every parameter is described, constrained, used, and its default passes its
// own constraints (a default CloudFormation would reject breaks `deploy`
// without overrides).
func TestParametersDescribedAndConstrained(t *testing.T) {
	t.Parallel()
	for _, name := range templateNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := loadTemplate(t, name)
			if len(l.param) == 0 {
				t.Fatal("no parameters")
			}
			for pname, p := range l.param {
				if p.Description == nil || strings.TrimSpace(*p.Description) == "" {
					t.Errorf("parameter %s has no Description", pname)
				}
				hasConstraint := p.AllowedPattern != nil || len(p.AllowedValues) > 0 ||
					p.MinLength != nil || p.MaxLength != nil || p.MinValue != nil || p.MaxValue != nil
				// AWS-specific types (subnet, security group, VPC ids) are
				// validated by CloudFormation against the account itself.
				awsTyped := strings.HasPrefix(p.Type, "AWS::") || strings.HasPrefix(p.Type, "List<AWS::")
				if !hasConstraint && !awsTyped {
					t.Errorf("parameter %s (%s) has no constraint (AllowedPattern, AllowedValues, Min/MaxLength, Min/MaxValue)", pname, p.Type)
				}
				if p.Type == "Number" && len(p.AllowedValues) == 0 && (p.MinValue == nil || p.MaxValue == nil) {
					t.Errorf("Number parameter %s needs both MinValue and MaxValue", pname)
				}
				used := regexp.MustCompile(`(!Ref\s+` + pname + `\b|\$\{` + pname + `\}|Ref:\s*` + pname + `\b)`)
				if !used.MatchString(l.text) {
					t.Errorf("parameter %s is never used", pname)
				}
				if p.Default != nil {
					if err := checkValue(p, p.Default); err != nil {
						t.Errorf("parameter %s: default %v violates its own constraint: %v", pname, p.Default, err)
					}
				}
			}
		})
	}
}

func TestParameterPatternsRejectBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tmpl, param, value string
		ok                 bool
	}{
		{"kinesis-ecs.yaml", "Image", "example.com/apigw-connector:1.0.0", true},
		{"kinesis-ecs.yaml", "Image", "apigw-connector@sha256:" + strings.Repeat("a", 64), true},
		{"kinesis-ecs.yaml", "Image", "apigw-connector", false},
		{"kinesis-ecs.yaml", "NodeUrl", "node.internal:5050", true},
		{"kinesis-ecs.yaml", "NodeUrl", "https://node.internal:5050", false},
		{"kinesis-ecs.yaml", "LogGroupName", "API-Gateway-Access-Logs_abc/prod", true},
		{"kinesis-ecs.yaml", "LogGroupName", "", true}, // SubscriptionScope Account; a Rule requires it for LogGroups
		{"kinesis-ecs.yaml", "LogGroupName", "bad group", false},
		{"kinesis-ecs.yaml", "ApplicationName", "apigw.connector", false},      // ECS names have no "."
		{"kinesis-ecs.yaml", "ApplicationName", strings.Repeat("a", 63), true}, // a DNS label
		{"kinesis-ecs.yaml", "ApplicationName", strings.Repeat("a", 64), false},
		{"kinesis-ecs.yaml", "ApplicationName", "-apigw", false},
		{"kinesis-ecs.yaml", "ApplicationName", "apigw_connector-2", true},
		{"kinesis-ecs.yaml", "ExcludedLogGroupNames", "/aws/lambda/a,/aws/lambda/b", true},
		{"kinesis-ecs.yaml", "ExcludedLogGroupNames", "/aws/lambda/a, /aws/lambda/b", false},
		{"kinesis-ecs.yaml", "AccountFilterPattern", `{ $.httpMethod = "GET" }`, false}, // would break the policy's JSON
		{"firehose.yaml", "EndpointUrl", "https://connector.example.com:443/firehose", true},
		{"firehose.yaml", "EndpointUrl", "https://connector.example.com:8443/firehose", false},
		{"central-destination.yaml", "SenderAccountIds", "111111111111,222222222222", true},
		{"central-destination.yaml", "SenderAccountIds", "111111111111, 222222222222", false},
		{"central-destination.yaml", "SenderAccountIds", "11111111111", false},
		{"central-destination.yaml", "OrganizationId", "o-a1b2c3d4e5", true},
		{"central-destination.yaml", "OrganizationId", "r-a1b2", false},
		{"central-destination.yaml", "StreamArn", "arn:aws:kinesis:eu-west-1:999999999999:stream/apigw-access-logs", true},
		{"central-destination.yaml", "StreamArn", "arn:aws:firehose:eu-west-1:999999999999:deliverystream/x", false},
		{"source-account.yaml", "CentralAccountId", "999999999999", true},
		{"source-account.yaml", "CentralAccountId", "arn:aws:iam::999999999999:root", false},
		{"kinesis-ecs.yaml", "LogGroupName2", "", true},
		{"kinesis-ecs.yaml", "ApplicationName", "ab", false},
		{"kinesis-ecs.yaml", "AlarmTopicArn", "arn:aws:sns:eu-west-1:123456789012:ops", true},
		{"kinesis-ecs.yaml", "AlarmTopicArn", "ops", false},
		{"firehose.yaml", "EndpointUrl", "https://connector.example.com" + firehose.DefaultConfig().Path, true},
		{"firehose.yaml", "EndpointUrl", "http://connector.example.com/firehose", false},
		{"lambda.yaml", "CodeS3Key", "releases/1.0.0/apigw-connector-lambda-arm64.zip", true},
		{"lambda.yaml", "CodeS3Key", "bootstrap", false},
		{"lambda.yaml", "AlarmTopicArn", "", true},
		{"lambda.yaml", "AlarmTopicArn", "arn:aws:sns:eu-west-1:123456789012:ops", true},
		{"lambda.yaml", "AlarmTopicArn", "ops", false},
		{"lambda.yaml", "FailureQueueRetentionSeconds", "1209600", true},
		{"lambda.yaml", "FailureQueueRetentionSeconds", "1209601", false},
	}
	cache := map[string]loaded{}
	for _, c := range cases {
		l, ok := cache[c.tmpl]
		if !ok {
			l = loadTemplate(t, c.tmpl)
			cache[c.tmpl] = l
		}
		p, ok := l.param[c.param]
		if !ok {
			t.Fatalf("%s: parameter %s missing", c.tmpl, c.param)
		}
		err := checkValue(p, c.value)
		if (err == nil) != c.ok {
			t.Errorf("%s %s=%q: accepted=%v, want %v (err %v)", c.tmpl, c.param, c.value, err == nil, c.ok, err)
		}
	}
}

func checkValue(param cloudformation.Parameter, v any) error {
	s := fmt.Sprint(v)
	if param.AllowedPattern != nil {
		re, err := regexp.Compile(`^(?:` + *param.AllowedPattern + `)$`)
		if err != nil {
			return fmt.Errorf("AllowedPattern does not compile: %w", err)
		}
		if !re.MatchString(s) {
			return fmt.Errorf("%q does not match %s", s, *param.AllowedPattern)
		}
	}
	if len(param.AllowedValues) > 0 {
		found := false
		for _, a := range param.AllowedValues {
			if fmt.Sprint(a) == s {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%q not in %v", s, param.AllowedValues)
		}
	}
	if param.MinLength != nil && len(s) < *param.MinLength {
		return fmt.Errorf("shorter than %d", *param.MinLength)
	}
	if param.MaxLength != nil && len(s) > *param.MaxLength {
		return fmt.Errorf("longer than %d", *param.MaxLength)
	}
	if param.Type == "Number" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		if param.MinValue != nil && f < *param.MinValue {
			return fmt.Errorf("%v below MinValue %v", f, *param.MinValue)
		}
		if param.MaxValue != nil && f > *param.MaxValue {
			return fmt.Errorf("%v above MaxValue %v", f, *param.MaxValue)
		}
	}
	return nil
}

type statement struct {
	Actions   []string
	Resources []string
}

// The exact permissions of every role. A change here is a security review.
var wantRoles = map[string]map[string]struct {
	principal  string
	statements []statement
}{
	"kinesis-ecs.yaml": {
		"LogsToKinesisRole": {"logs.amazonaws.com", []statement{
			{[]string{"kinesis:PutRecord"}, []string{"{GetAtt:Stream.Arn}"}},
		}},
		"ExecutionRole": {"ecs-tasks.amazonaws.com", []statement{
			{[]string{"ecr:GetAuthorizationToken"}, []string{"*"}},
			{[]string{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"},
				[]string{"arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/*"}},
			{[]string{"logs:CreateLogStream", "logs:PutLogEvents"}, []string{"${ConnectorLogGroup.Arn}"}},
		}},
		"TaskRole": {"ecs-tasks.amazonaws.com", []statement{
			{[]string{"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"},
				[]string{"{GetAtt:Stream.Arn}"}},
			{[]string{"dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"},
				[]string{"{GetAtt:LeaseTable.Arn}"}},
			{[]string{"dynamodb:Query"}, []string{"${LeaseTable.Arn}/index/LeaseOwnerToLeaseKeyIndex"}},
		}},
	},
	"firehose.yaml": {
		"FirehoseRole": {"firehose.amazonaws.com", []statement{
			{[]string{"s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject"},
				[]string{"{GetAtt:BackupBucket.Arn}", "${BackupBucket.Arn}/*"}},
			{[]string{"secretsmanager:GetSecretValue"}, []string{"{Ref:AccessKeySecret}"}},
			{[]string{"logs:PutLogEvents"},
				[]string{"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${DeliveryLogGroup}:log-stream:${DeliveryLogStream}"}},
		}},
		"LogsToFirehoseRole": {"logs.amazonaws.com", []statement{
			{[]string{"firehose:PutRecord"}, []string{"{GetAtt:DeliveryStream.Arn}"}},
		}},
	},
	"central-destination.yaml": {
		"DestinationRole": {"logs.amazonaws.com", []statement{
			{[]string{"kinesis:PutRecord"}, []string{"{Ref:StreamArn}"}},
		}},
	},
	"source-account.yaml": {
		// AWS's documented permission for the organization validation role.
		"SubscriptionRole": {"logs.amazonaws.com", []statement{
			{[]string{"logs:PutLogEvents"}, []string{"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}},
		}},
	},
	"lambda.yaml": {
		"FunctionRole": {"lambda.amazonaws.com", []statement{
			{[]string{"logs:CreateLogStream", "logs:PutLogEvents"}, []string{"{GetAtt:FunctionLogGroup.Arn}"}},
			// Lambda writes the on-failure invocation record with the function's role.
			{[]string{"sqs:SendMessage"}, []string{"{GetAtt:FailureQueue.Arn}"}},
		}},
	},
}

// The documented confused-deputy conditions: CloudWatch Logs roles
// (aws:SourceArn arn:<partition>:logs:<region>:<account>:*) and Firehose
// roles (sts:ExternalId = the account id).
var (
	logsTrust = map[string]any{"StringLike": map[string]any{
		"aws:SourceArn": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*"}}
	wantTrustConditions = map[string]any{
		"kinesis-ecs.yaml/LogsToKinesisRole":   logsTrust,
		"firehose.yaml/LogsToFirehoseRole":     logsTrust,
		"source-account.yaml/SubscriptionRole": logsTrust,
		"firehose.yaml/FirehoseRole":           map[string]any{"StringEquals": map[string]any{"sts:ExternalId": "{Ref:AWS::AccountId}"}},
	}
)

// Resource "*" is allowed only where AWS offers no resource-level permission.
var wildcardExceptions = map[string]string{
	"ExecutionRole/ecr:GetAuthorizationToken": "GetAuthorizationToken supports no resource-level permissions",
}

func TestIAMLeastPrivilege(t *testing.T) {
	t.Parallel()
	for _, name := range templateNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := loadTemplate(t, name)
			want := wantRoles[name]
			for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group"} {
				if ids := l.resourcesOfType(typ); len(ids) > 0 {
					t.Errorf("%s resources %v: keep permissions inline on the role so this test sees them", typ, ids)
				}
			}
			roles := l.resourcesOfType("AWS::IAM::Role")
			var wantIDs []string
			for id := range want {
				wantIDs = append(wantIDs, id)
			}
			sort.Strings(wantIDs)
			if !reflect.DeepEqual(roles, wantIDs) {
				t.Fatalf("roles = %v, want %v (add new roles to wantRoles after review)", roles, wantIDs)
			}
			for _, id := range roles {
				props := l.props(t, id)
				if m := props["ManagedPolicyArns"]; m != nil {
					t.Errorf("%s: ManagedPolicyArns %v: AWS managed policies are broader than needed", id, m)
				}
				// Trust: exactly the expected service.
				trust := path(props, "AssumeRolePolicyDocument", "Statement")
				tstmts, _ := trust.([]any)
				if len(tstmts) != 1 {
					t.Fatalf("%s: trust policy has %d statements, want 1", id, len(tstmts))
				}
				if got := strs(path(tstmts[0], "Principal", "Service")); !reflect.DeepEqual(got, []string{want[id].principal}) {
					t.Errorf("%s: trusted services %v, want %s", id, got, want[id].principal)
				}
				// Service trust in AWS's documented form, exactly (the
				// cross-account destination role is checked per mode in
				// TestCentralDestination).
				if wantCond, ok := wantTrustConditions[name+"/"+id]; ok {
					if got := path(tstmts[0], "Condition"); !reflect.DeepEqual(got, wantCond) {
						t.Errorf("%s: trust condition %v, want AWS's documented %v", id, got, wantCond)
					}
				} else if p := want[id].principal; p == "logs.amazonaws.com" || p == "firehose.amazonaws.com" {
					if name+"/"+id != "central-destination.yaml/DestinationRole" {
						t.Errorf("%s trusts %s with no reviewed condition in wantTrustConditions (confused deputy)", id, p)
					}
				}
				// Permissions: exact actions and resources.
				var got []statement
				for _, pol := range list(props["Policies"]) {
					for _, s := range list(path(pol, "PolicyDocument", "Statement")) {
						if e := path(s, "Effect"); e != "Allow" {
							t.Errorf("%s: unexpected %v statement", id, e)
						}
						acts := strs(path(s, "Action"))
						sort.Strings(acts)
						got = append(got, statement{acts, strs(path(s, "Resource"))})
						if path(s, "NotAction") != nil || path(s, "NotResource") != nil {
							t.Errorf("%s: NotAction/NotResource grant more than they say", id)
						}
						for _, a := range acts {
							if strings.Contains(a, "*") {
								t.Errorf("%s: wildcard action %q", id, a)
							}
						}
						for _, r := range strs(path(s, "Resource")) {
							if r != "*" {
								continue
							}
							for _, a := range acts {
								if _, ok := wildcardExceptions[id+"/"+a]; !ok {
									t.Errorf("%s: %s on Resource \"*\" (no documented exception)", id, a)
								}
							}
						}
					}
				}
				if !reflect.DeepEqual(got, want[id].statements) {
					t.Errorf("%s permissions:\n got  %+v\n want %+v", id, got, want[id].statements)
				}
			}
		})
	}
}

// The task role must cover every Kinesis and DynamoDB call the connector's
// Kinesis source makes (CreateTable excepted: the template creates the table
// and sets kinesis.create_lease_table=false). Catches code that starts using
// a new API before the template grants it.
func TestTaskRoleCoversCode(t *testing.T) {
	t.Parallel()
	kinesisOps := []string{"ListShards", "DescribeStreamSummary", "DescribeStream", "GetShardIterator", "GetRecords",
		"SubscribeToShard", "RegisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers", "DeregisterStreamConsumer"}
	dynamoOps := []string{"CreateTable", "DescribeTable", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan", "Query",
		"BatchGetItem", "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "UpdateTable"}
	service := map[string]string{}
	for _, op := range kinesisOps {
		service[op] = "kinesis"
	}
	for _, op := range dynamoOps {
		service[op] = "dynamodb"
	}
	// client.Op(ctx, ...) with any *ctx name, and paginators.
	call := regexp.MustCompile(`\.([A-Z][A-Za-z]+)\(\w*(?:ctx|Ctx)\b|\bNew([A-Z][A-Za-z]+)Paginator\(`)
	used := map[string]bool{}
	for _, dir := range []string{"../pkg/lease", "../pkg/source/kinesis"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range call.FindAllStringSubmatch(string(src), -1) {
				op := m[1] + m[2]
				if svc, ok := service[op]; ok {
					used[svc+":"+op] = true
				}
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("found no Kinesis or DynamoDB calls in pkg/lease and pkg/source/kinesis: has the code moved?")
	}
	granted := map[string]bool{}
	for _, s := range wantRoles["kinesis-ecs.yaml"]["TaskRole"].statements {
		for _, a := range s.Actions {
			granted[a] = true
		}
	}
	for action := range used {
		if action == "dynamodb:CreateTable" {
			continue
		}
		if !granted[action] {
			t.Errorf("the code calls %s but the ECS task role does not grant it", action)
		}
	}
	for action := range granted {
		if !used[action] {
			t.Errorf("the task role grants %s, which the code never calls: drop it", action)
		}
	}
}

func envOf(t *testing.T, c map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range list(c["Environment"]) {
		env[fmt.Sprint(path(kv, "Name"))] = fmt.Sprint(path(kv, "Value"))
	}
	return env
}

func TestKinesisECSTask(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "kinesis-ecs.yaml")
	td, err := l.tmpl.GetECSTaskDefinitionWithName("TaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	if td.NetworkMode == nil || *td.NetworkMode != "awsvpc" || !reflect.DeepEqual(td.RequiresCompatibilities, []string{"FARGATE"}) {
		t.Errorf("task definition must be Fargate with awsvpc networking")
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers, want 1", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	raw := obj(path(l.props(t, "TaskDefinition"), "ContainerDefinitions", "0"))
	env := envOf(t, raw)

	known := knownEnv()
	for name := range env {
		if !known[name] {
			t.Errorf("environment %s is not a setting (config.Settings), an official connector variable or an AWS SDK variable", name)
		}
	}
	for _, name := range []string{"APIGW_CONNECTOR_SOURCE_TYPE", "APIGW_CONNECTOR_KINESIS_STREAM", "X_NODE_URL", "X_NODE_SCHEME"} {
		if env[name] == "" {
			t.Errorf("environment %s is not set", name)
		}
	}
	if env["APIGW_CONNECTOR_SOURCE_TYPE"] != "kinesis" {
		t.Errorf("source type %q, want kinesis", env["APIGW_CONNECTOR_SOURCE_TYPE"])
	}
	if env["APIGW_CONNECTOR_KINESIS_STREAM"] != "{Ref:Stream}" {
		t.Errorf("stream %q, want the template's stream", env["APIGW_CONNECTOR_KINESIS_STREAM"])
	}
	// The template owns the lease table: the task must not create it, and
	// must use the same name.
	if env["APIGW_CONNECTOR_KINESIS_CREATE_LEASE_TABLE"] != "false" {
		t.Errorf("APIGW_CONNECTOR_KINESIS_CREATE_LEASE_TABLE = %q, want false (the template creates the table)", env["APIGW_CONNECTOR_KINESIS_CREATE_LEASE_TABLE"])
	}
	if env["APIGW_CONNECTOR_KINESIS_APPLICATION_NAME"] != "{Ref:LeaseTable}" {
		t.Errorf("application name %q, want the lease table's name", env["APIGW_CONNECTOR_KINESIS_APPLICATION_NAME"])
	}

	// Stop: ECS waits StopTimeout after SIGTERM; the connector needs its grace.
	grace := kinesis.DefaultConfig().ShutdownGrace
	if v, ok := env["APIGW_CONNECTOR_KINESIS_SHUTDOWN_GRACE"]; ok {
		if grace, err = time.ParseDuration(v); err != nil {
			t.Fatalf("shutdown grace %q: %v", v, err)
		}
	}
	if c.StopTimeout == nil || time.Duration(*c.StopTimeout)*time.Second <= grace {
		t.Errorf("StopTimeout %s must exceed kinesis.shutdown_grace %s", intStr(c.StopTimeout), grace)
	} else if *c.StopTimeout > 120 {
		t.Errorf("StopTimeout %d exceeds Fargate's maximum of 120", *c.StopTimeout)
	}

	if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
		t.Error("ReadonlyRootFilesystem must be true")
	}
	if c.User == nil || !nonRootUser(*c.User) {
		t.Errorf("User %v must be a non-root user", c.User)
	}
	if c.Privileged != nil && *c.Privileged {
		t.Error("container must not be privileged")
	}
	if c.HealthCheck == nil || !reflect.DeepEqual(c.HealthCheck.Command, []string{"CMD", "/apigw-connector", "healthcheck"}) {
		t.Errorf("HealthCheck must run the healthcheck subcommand in exec form, got %+v", c.HealthCheck)
	}
	if c.LogConfiguration == nil || c.LogConfiguration.LogDriver != "awslogs" || c.LogConfiguration.Options["awslogs-group"] != "{Ref:ConnectorLogGroup}" {
		t.Errorf("container logs must go to the template's log group through awslogs, got %+v", c.LogConfiguration)
	}

	// Metrics port: the listener, the port mapping, the discovery labels and
	// Cloud Map all agree.
	metricsAddr := telemetry.DefaultMetricsConfig().Addr
	if v, ok := env["APIGW_CONNECTOR_METRICS_ADDR"]; ok {
		metricsAddr = v
	}
	_, port, err := net.SplitHostPort(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PortMappings) != 1 || c.PortMappings[0].ContainerPort == nil || strconv.Itoa(*c.PortMappings[0].ContainerPort) != port {
		t.Errorf("port mappings %+v, want only the metrics port %s", c.PortMappings, port)
	}
	if c.DockerLabels["ECS_PROMETHEUS_EXPORTER_PORT"] != port {
		t.Errorf("docker label ECS_PROMETHEUS_EXPORTER_PORT = %q, want %s", c.DockerLabels["ECS_PROMETHEUS_EXPORTER_PORT"], port)
	}
	svc := l.props(t, "Service")
	if got := fmt.Sprint(path(svc, "ServiceRegistries", "0", "ContainerPort")); got != port {
		t.Errorf("Cloud Map registers port %s, want %s", got, port)
	}
	if !reflect.DeepEqual(path(svc, "DeploymentConfiguration", "DeploymentCircuitBreaker"), map[string]any{"Enable": true, "Rollback": true}) {
		t.Errorf("service needs the deployment circuit breaker with rollback, got %v", path(svc, "DeploymentConfiguration", "DeploymentCircuitBreaker"))
	}
}

func nonRootUser(u string) bool {
	user, group, hasGroup := strings.Cut(u, ":")
	if user == "" || user == "root" || user == "0" {
		return false
	}
	return !hasGroup || (group != "" && group != "root" && group != "0")
}

func TestKinesisECSStreamTableScalingAlarm(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "kinesis-ecs.yaml")

	stream := l.props(t, "Stream")
	if !reflect.DeepEqual(stream["StreamEncryption"], map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}) {
		t.Errorf("stream encryption %v, want KMS with alias/aws/kinesis", stream["StreamEncryption"])
	}
	shards, ok := stream["ShardCount"].(float64)
	if !ok {
		t.Fatalf("ShardCount %v", stream["ShardCount"])
	}

	table := l.props(t, "LeaseTable")
	if table["TableName"] != kinesis.DefaultConfig().ApplicationName {
		t.Errorf("lease table name %v, want the application name (default %s)", table["TableName"], kinesis.DefaultConfig().ApplicationName)
	}
	if table["BillingMode"] != "PAY_PER_REQUEST" {
		t.Errorf("BillingMode %v, want PAY_PER_REQUEST", table["BillingMode"])
	}
	if !reflect.DeepEqual(table["KeySchema"], []any{map[string]any{"AttributeName": "leaseKey", "KeyType": "HASH"}}) ||
		!reflect.DeepEqual(table["AttributeDefinitions"], []any{map[string]any{"AttributeName": "leaseKey", "AttributeType": "S"}}) {
		t.Errorf("lease table key must be leaseKey (S, HASH): %v %v", table["KeySchema"], table["AttributeDefinitions"])
	}
	if path(table, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled") != true {
		t.Error("lease table needs point-in-time recovery")
	}

	target := l.props(t, "ScalableTarget")
	maxTasks, _ := target["MaxCapacity"].(float64)
	minTasks, _ := target["MinCapacity"].(float64)
	if minTasks < 1 || maxTasks < minTasks {
		t.Errorf("scaling bounds %v..%v", minTasks, maxTasks)
	}
	if maxTasks > shards {
		t.Errorf("MaxCapacity %v > ShardCount %v: extra tasks would hold no lease", maxTasks, shards)
	}
	if *l.param["MaxTasks"].MaxValue > *l.param["ShardCount"].MaxValue {
		t.Error("MaxTasks may exceed the largest ShardCount")
	}
	pol := l.props(t, "CpuScalingPolicy")
	if path(pol, "TargetTrackingScalingPolicyConfiguration", "PredefinedMetricSpecification", "PredefinedMetricType") != "ECSServiceAverageCPUUtilization" {
		t.Error("scaling policy must track ECSServiceAverageCPUUtilization")
	}
	if pol["ScalingTargetId"] != "{Ref:ScalableTarget}" {
		t.Errorf("scaling policy targets %v", pol["ScalingTargetId"])
	}

	var found bool
	for _, id := range l.resourcesOfType("AWS::CloudWatch::Alarm") {
		a := l.props(t, id)
		if a["Namespace"] == "AWS/Kinesis" && a["MetricName"] == "GetRecords.IteratorAgeMilliseconds" &&
			path(a, "Dimensions", "0", "Value") == "{Ref:Stream}" {
			found = true
		}
	}
	if !found {
		t.Error("no alarm on the stream's GetRecords.IteratorAgeMilliseconds")
	}

	filters := l.resourcesOfType("AWS::Logs::SubscriptionFilter")
	if len(filters) == 0 {
		t.Fatal("no subscription filter")
	}
	for _, id := range filters {
		f := l.props(t, id)
		if f["DestinationArn"] != "{GetAtt:Stream.Arn}" || f["RoleArn"] != "{GetAtt:LogsToKinesisRole.Arn}" {
			t.Errorf("%s: destination %v role %v", id, f["DestinationArn"], f["RoleArn"])
		}
	}
}

func TestFirehoseTemplate(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "firehose.yaml")
	ds := l.props(t, "DeliveryStream")
	h, ok := ds["HttpEndpointDestinationConfiguration"].(map[string]any)
	if !ok {
		t.Fatal("delivery stream has no HttpEndpointDestinationConfiguration")
	}
	if path(h, "EndpointConfiguration", "Url") != "{Ref:EndpointUrl}" {
		t.Errorf("endpoint URL %v, want the EndpointUrl parameter", path(h, "EndpointConfiguration", "Url"))
	}
	if k := path(h, "EndpointConfiguration", "AccessKey"); k != nil {
		t.Errorf("AccessKey %v in the template: the key must come from Secrets Manager", k)
	}
	if path(h, "SecretsManagerConfiguration", "Enabled") != true || path(h, "SecretsManagerConfiguration", "SecretARN") != "{Ref:AccessKeySecret}" {
		t.Errorf("SecretsManagerConfiguration %v, want enabled with the generated secret", h["SecretsManagerConfiguration"])
	}
	if path(l.props(t, "AccessKeySecret"), "GenerateSecretString", "GenerateStringKey") != "api_key" {
		t.Error("the secret must hold the key under api_key, as Firehose expects")
	}
	if h["S3BackupMode"] != "FailedDataOnly" || path(h, "S3Configuration", "BucketARN") != "{GetAtt:BackupBucket.Arn}" {
		t.Errorf("failed deliveries must go to the backup bucket: %v %v", h["S3BackupMode"], path(h, "S3Configuration", "BucketARN"))
	}
	if path(h, "RetryOptions", "DurationInSeconds") == nil {
		t.Error("RetryOptions.DurationInSeconds not set")
	}
	if size, _ := path(h, "BufferingHints", "SizeInMBs").(float64); int64(size)<<20 > firehose.DefaultConfig().MaxBodyBytes {
		t.Errorf("buffer %v MiB exceeds the connector's default firehose.max_body_bytes", size)
	}
	bucket := l.props(t, "BackupBucket")
	if path(bucket, "BucketEncryption", "ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
		t.Error("backup bucket is not encrypted")
	}
	pab, _ := bucket["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if pab[k] != true {
			t.Errorf("backup bucket %s is not true", k)
		}
	}
	for _, id := range l.resourcesOfType("AWS::Logs::SubscriptionFilter") {
		f := l.props(t, id)
		if f["DestinationArn"] != "{GetAtt:DeliveryStream.Arn}" || f["RoleArn"] != "{GetAtt:LogsToFirehoseRole.Arn}" {
			t.Errorf("%s: destination %v role %v", id, f["DestinationArn"], f["RoleArn"])
		}
	}
}

func TestLambdaTemplate(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "lambda.yaml")
	fn, err := l.tmpl.GetLambdaFunctionWithName("Function")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Runtime == nil || *fn.Runtime != "provided.al2023" || fn.Handler == nil || *fn.Handler != "bootstrap" {
		t.Errorf("runtime %v handler %v, want provided.al2023 and bootstrap", fn.Runtime, fn.Handler)
	}
	arch := l.param["Architecture"]
	if got := fmt.Sprint(arch.AllowedValues); got != "[arm64 x86_64]" {
		t.Errorf("Architecture allowed values %s, want [arm64 x86_64]", got)
	}
	if !strings.Contains(l.text, "Architectures: [!Ref Architecture]") {
		t.Error("Architectures must come from the Architecture parameter")
	}
	if path(l.props(t, "Function"), "Code", "S3Bucket") != "{Ref:CodeS3Bucket}" || path(l.props(t, "Function"), "Code", "S3Key") != "{Ref:CodeS3Key}" {
		t.Error("code must come from the CodeS3Bucket/CodeS3Key parameters")
	}
	known := knownEnv()
	vars := obj(path(l.props(t, "Function"), "Environment", "Variables"))
	for name := range vars {
		if !known[name] {
			t.Errorf("environment %s is unknown to the connector", name)
		}
	}
	if vars["X_NODE_URL"] != "{Ref:NodeUrl}" || vars["X_NODE_SCHEME"] != "https" {
		t.Errorf("X_NODE_URL/X_NODE_SCHEME = %v/%v, want the parameters (scheme default https)", vars["X_NODE_URL"], vars["X_NODE_SCHEME"])
	}
	perm := l.props(t, "InvokePermission")
	if perm["SourceAccount"] != "{Ref:AWS::AccountId}" {
		t.Errorf("invoke permission SourceAccount %v, want this account", perm["SourceAccount"])
	}
	if perm["Principal"] != "logs.amazonaws.com" || perm["Action"] != "lambda:InvokeFunction" ||
		perm["SourceArn"] != "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${LogGroupName}:*" {
		t.Errorf("invoke permission %v: only CloudWatch Logs, only for the subscribed log group", perm)
	}
	sf, err := l.tmpl.GetLogsSubscriptionFilterWithName("SubscriptionFilter")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sf.AWSCloudFormationDependsOn, []string{"InvokePermission"}) {
		t.Errorf("subscription filter must depend on the invoke permission (CloudWatch Logs tests delivery at creation), got %v", sf.AWSCloudFormationDependsOn)
	}
}

// CloudWatch Logs invokes the function asynchronously: Lambda retries a failed
// event at most twice within MaximumEventAgeInSeconds and then drops it unless
// an on-failure destination keeps it. A node outage longer than the retries
// must not lose access-log events.
func TestLambdaFailedEventsAreKept(t *testing.T) {
	t.Parallel()
	l := loadTemplate(t, "lambda.yaml")

	ids := l.resourcesOfType("AWS::Lambda::EventInvokeConfig")
	if len(ids) != 1 {
		t.Fatalf("%d AWS::Lambda::EventInvokeConfig resources, want 1: without one, Lambda drops events after its retries", len(ids))
	}
	cfg, err := l.tmpl.GetLambdaEventInvokeConfigWithName(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FunctionName != "{Ref:Function}" || cfg.Qualifier != "$LATEST" {
		t.Errorf("EventInvokeConfig applies to %s:%s, want the template's function at $LATEST (the template publishes no version or alias)", cfg.FunctionName, cfg.Qualifier)
	}
	if cfg.MaximumRetryAttempts == nil || *cfg.MaximumRetryAttempts != 2 {
		t.Errorf("MaximumRetryAttempts %s, want 2 (the maximum)", intStr(cfg.MaximumRetryAttempts))
	}
	if cfg.MaximumEventAgeInSeconds == nil || *cfg.MaximumEventAgeInSeconds != 21600 {
		t.Errorf("MaximumEventAgeInSeconds %s, want 21600 (the maximum, 6 h)", intStr(cfg.MaximumEventAgeInSeconds))
	}
	if cfg.DestinationConfig == nil || cfg.DestinationConfig.OnFailure == nil {
		t.Fatal("EventInvokeConfig has no OnFailure destination: events that fail every attempt are dropped")
	}
	queues := l.resourcesOfType("AWS::SQS::Queue")
	if len(queues) != 1 || cfg.DestinationConfig.OnFailure.Destination != "{GetAtt:"+queues[0]+".Arn}" {
		t.Fatalf("OnFailure destination %q, want the template's SQS queue %v", cfg.DestinationConfig.OnFailure.Destination, queues)
	}
	if cfg.DestinationConfig.OnSuccess != nil {
		t.Errorf("OnSuccess destination %+v: every delivered event would be copied to it", cfg.DestinationConfig.OnSuccess)
	}
	// The role must hold the grant when Lambda validates the destination.
	if wantRoles["lambda.yaml"]["FunctionRole"].statements[1].Resources[0] != "{GetAtt:"+queues[0]+".Arn}" {
		t.Error("the function role's sqs:SendMessage grant is not on the failure queue")
	}

	queue, err := l.tmpl.GetSQSQueueWithName(queues[0])
	if err != nil {
		t.Fatal(err)
	}
	if queue.FifoQueue != nil && *queue.FifoQueue {
		t.Error("the failure queue is FIFO: Lambda destinations accept only standard queues")
	}
	sse := queue.SqsManagedSseEnabled != nil && *queue.SqsManagedSseEnabled
	if !sse {
		t.Error("the failure queue is not encrypted with SSE-SQS (SqsManagedSseEnabled: true)")
	}
	if queue.KmsMasterKeyId != nil {
		t.Errorf("KmsMasterKeyId %q: a KMS key needs kms:GenerateDataKey on the function role, which the template does not grant", *queue.KmsMasterKeyId)
	}
	if queue.MessageRetentionPeriod == nil || *queue.MessageRetentionPeriod != 1209600 {
		t.Errorf("failure queue retention %s s by default, want 1209600 (14 days)", intStr(queue.MessageRetentionPeriod))
	}
	if !strings.Contains(l.text, "MessageRetentionPeriod: !Ref FailureQueueRetentionSeconds") {
		t.Error("failure queue retention must come from the FailureQueueRetentionSeconds parameter")
	}

	alarms := map[string]map[string]any{}
	for _, id := range l.resourcesOfType("AWS::CloudWatch::Alarm") {
		a := l.props(t, id)
		alarms[fmt.Sprint(a["Namespace"], "/", a["MetricName"])] = a
	}
	checkAlarm := func(key, dimName, dimValue string) {
		t.Helper()
		a, ok := alarms[key]
		if !ok {
			t.Errorf("no alarm on %s", key)
			return
		}
		if path(a, "Dimensions", "0", "Name") != dimName || path(a, "Dimensions", "0", "Value") != dimValue {
			t.Errorf("%s alarm dimension %v, want %s=%s", key, a["Dimensions"], dimName, dimValue)
		}
		if a["ComparisonOperator"] != "GreaterThanThreshold" || a["Threshold"] != float64(0) {
			t.Errorf("%s alarm fires on %v %v, want GreaterThanThreshold 0", key, a["ComparisonOperator"], a["Threshold"])
		}
	}
	if n := strings.Count(l.text, "AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]"); n != len(alarms) {
		t.Errorf("%d of %d alarms notify the optional AlarmTopicArn", n, len(alarms))
	}
	checkAlarm("AWS/SQS/ApproximateNumberOfMessagesVisible", "QueueName", "{GetAtt:"+queues[0]+".QueueName}")
	checkAlarm("AWS/Lambda/DestinationDeliveryFailures", "FunctionName", "{Ref:Function}")
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func intStr(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}
