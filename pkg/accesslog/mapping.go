package accesslog

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Mapping names the access-log keys each APICall field is read from. Users
// choose their own access-log format, so every field is a list of key names
// tried in order: the first one present with a value wins. A key with dots
// ("identity.sourceIp") also matches the nested value {"identity":{"sourceIp":..}}
// of hand-written nested formats (among a line's first 48 keys); the
// literal key "identity.sourceIp" still matches too.
type Mapping struct {
	RequestID          []string `yaml:"request_id"`
	ExtendedRequestID  []string `yaml:"extended_request_id"` // $context.extendedRequestId (REST APIs)
	Method             []string `yaml:"method"`
	Host               []string `yaml:"host"`
	Path               []string `yaml:"path"`
	RouteTemplate      []string `yaml:"route_template"` // $context.resourcePath
	RouteKey           []string `yaml:"route_key"`      // $context.routeKey, "GET /pets/{id}"
	Protocol           []string `yaml:"protocol"`
	Status             []string `yaml:"status"`
	ResponseLatency    []string `yaml:"response_latency"`    // ms
	IntegrationLatency []string `yaml:"integration_latency"` // ms
	IntegrationStatus  []string `yaml:"integration_status"`
	ResponseLength     []string `yaml:"response_length"`
	RequestTime        []string `yaml:"request_time"`       // CLF, 24/Nov/2026:10:15:30 +0000
	RequestTimeEpoch   []string `yaml:"request_time_epoch"` // epoch ms
	SourceIP           []string `yaml:"source_ip"`
	UserAgent          []string `yaml:"user_agent"`
	Stage              []string `yaml:"stage"`
	APIID              []string `yaml:"api_id"`
	ErrorMessage       []string `yaml:"error_message"`
	EventType          []string `yaml:"event_type"`    // WebSocket: line is skipped when present
	ConnectionID       []string `yaml:"connection_id"` // WebSocket: line is skipped when present
}

// DefaultMapping returns the documented keys first, then the aliases of AWS's
// example formats and common hand-written variants.
func DefaultMapping() Mapping {
	return Mapping{
		RequestID:          []string{"requestId", "requestID", "request_id"},
		ExtendedRequestID:  []string{"extendedRequestId", "extendedRequestID", "extended_request_id"},
		Method:             []string{"httpMethod", "method", "http_method"},
		Host:               []string{"domainName", "host", "domain_name"},
		Path:               []string{"path", "requestPath", "request_path"},
		RouteTemplate:      []string{"resourcePath", "resource_path"},
		RouteKey:           []string{"routeKey", "route_key"},
		Protocol:           []string{"protocol"},
		Status:             []string{"status", "statusCode", "status_code"},
		ResponseLatency:    []string{"responseLatency", "response_latency", "latency"},
		IntegrationLatency: []string{"integrationLatency", "integration_latency", "integration.latency"},
		IntegrationStatus:  []string{"integrationStatus", "integration_status", "integration.status"},
		ResponseLength:     []string{"responseLength", "response_length"},
		RequestTime:        []string{"requestTime", "request_time"},
		RequestTimeEpoch:   []string{"requestTimeEpoch", "request_time_epoch"},
		SourceIP:           []string{"sourceIp", "ip", "sourceIP", "source_ip", "identity.sourceIp"},
		UserAgent:          []string{"userAgent", "user_agent", "identity.userAgent"},
		Stage:              []string{"stage"},
		APIID:              []string{"apiId", "api_id"},
		ErrorMessage:       []string{"errorMessage", "error", "error_message", "error.message"},
		EventType:          []string{"eventType", "event_type"},
		ConnectionID:       []string{"connectionId", "connection_id"},
	}
}

// field indexes, in Mapping's order.
const (
	fRequestID = iota
	fExtendedRequestID
	fMethod
	fHost
	fPath
	fRouteTemplate
	fRouteKey
	fProtocol
	fStatus
	fResponseLatency
	fIntegrationLatency
	fIntegrationStatus
	fResponseLength
	fRequestTime
	fRequestTimeEpoch
	fSourceIP
	fUserAgent
	fStage
	fAPIID
	fErrorMessage
	fEventType
	fConnectionID
	numFields
)

// lists returns the key lists in field-index order, with their yaml names.
func (m *Mapping) lists() ([numFields][]string, [numFields]string) {
	var lists [numFields][]string
	var names [numFields]string
	v := reflect.ValueOf(m).Elem()
	t := v.Type()
	for i := range numFields {
		lists[i] = v.Field(i).Interface().([]string)
		names[i] = t.Field(i).Tag.Get("yaml")
	}
	return lists, names
}

// MappingPath is the config path of the mapping, used in Validate messages.
const MappingPath = "access_log.fields"

// Validate checks that the fields a call needs have keys, that no key is
// empty, and that no key feeds two fields.
func (m Mapping) Validate() error {
	var errs []error
	lists, names := m.lists()
	for _, f := range []int{fMethod, fStatus} {
		if len(lists[f]) == 0 {
			errs = append(errs, fmt.Errorf("%s.%s must list at least one key, got none: set %s.%s (e.g. [%q]; env %s)",
				MappingPath, names[f], MappingPath, names[f], DefaultMapping().keysOf(f)[0], envOf(names[f])))
		}
	}
	if len(lists[fPath]) == 0 && len(lists[fRouteTemplate]) == 0 && len(lists[fRouteKey]) == 0 {
		errs = append(errs, fmt.Errorf("%s.path must list at least one key (or route_template/route_key must), got none: set %s.path (e.g. [\"path\"])",
			MappingPath, MappingPath))
	}
	owner := map[string]int{}
	for f := range numFields {
		for _, k := range lists[f] {
			if strings.TrimSpace(k) == "" {
				errs = append(errs, fmt.Errorf("%s.%s has an empty key name: remove it from %s.%s", MappingPath, names[f], MappingPath, names[f]))
			}
			if strings.Contains(k, ".") && slices.Contains(strings.Split(k, "."), "") {
				errs = append(errs, fmt.Errorf("%s.%s key %q has an empty part: write nested keys as dot paths like \"identity.sourceIp\"", MappingPath, names[f], k))
			}
			if strings.Count(k, ".") >= maxNestDepth {
				errs = append(errs, fmt.Errorf("%s.%s key %q nests deeper than %d levels: flatten the access-log format", MappingPath, names[f], k, maxNestDepth))
			}
			if g, dup := owner[k]; dup {
				if g == f {
					errs = append(errs, fmt.Errorf("%s.%s lists key %q twice: remove one", MappingPath, names[f], k))
				} else {
					errs = append(errs, fmt.Errorf("key %q is listed in both %s.%s and %s.%s: keep it in one", k, MappingPath, names[g], MappingPath, names[f]))
				}
				continue
			}
			owner[k] = f
		}
	}
	return errors.Join(errs...)
}

// envOf names the environment override of a mapping field.
func envOf(field string) string {
	return "APIGW_CONNECTOR_" + strings.ToUpper(strings.ReplaceAll(MappingPath, ".", "_")+"_"+field)
}

func (m Mapping) keysOf(f int) []string {
	lists, _ := m.lists()
	return lists[f]
}
