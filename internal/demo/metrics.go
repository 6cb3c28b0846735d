package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the text exposition format: enough of it for the
// gauges and counters the demo reports (no exemplars, no timestamps needed).
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.name = line[:i]
			j := i + 1
			for j < len(line) && line[j] != '}' {
				eq := strings.IndexByte(line[j:], '=')
				if eq < 0 || j+eq+1 >= len(line) || line[j+eq+1] != '"' {
					return nil, fmt.Errorf("parse metrics line %q: bad labels", line)
				}
				key := strings.TrimSpace(line[j : j+eq])
				k := j + eq + 2
				var val strings.Builder
				for k < len(line) && line[k] != '"' {
					if line[k] == '\\' && k+1 < len(line) {
						k++
						if line[k] == 'n' {
							val.WriteByte('\n')
							k++
							continue
						}
					}
					val.WriteByte(line[k])
					k++
				}
				s.labels[key] = val.String()
				j = k + 1
				if j < len(line) && line[j] == ',' {
					j++
				}
			}
			rest = strings.TrimSpace(line[min(j+1, len(line)):])
		} else {
			name, r, _ := strings.Cut(line, " ")
			s.name, rest = name, strings.TrimSpace(r)
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("parse metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("parse metrics line %q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// scrape fetches and parses url (a /metrics endpoint).
func scrape(ctx context.Context, c *http.Client, url string) ([]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// workerView is what the demo shows of one worker's metrics.
type workerView struct {
	ok        bool
	leases    int     // apigw_connector_lease_held
	lagMillis float64 // max apigw_connector_kinesis_millis_behind_latest over its shards
	delivered float64 // apigw_connector_pipeline_calls_total{result="delivered"}
	rejected  float64 // ...{result="rejected"}: refused for good (a duplicate counts as delivered, already held)
	// alreadyHeld: apigw_connector_node_already_held_total, deliveries the
	// node already had (redeliveries after a lease move), within delivered.
	alreadyHeld float64
	records     float64 // apigw_connector_kinesis_records_read_total
}

func viewOf(samples []sample) workerView {
	v := workerView{ok: true}
	shards := map[string]bool{}
	haveHeld := false
	for _, s := range samples {
		switch s.name {
		case "apigw_connector_lease_held":
			v.leases, haveHeld = int(s.value), true
		case "apigw_connector_kinesis_millis_behind_latest":
			v.lagMillis = max(v.lagMillis, s.value)
			shards[s.labels["shard"]] = true
		case "apigw_connector_pipeline_calls_total":
			switch s.labels["result"] {
			case "delivered":
				v.delivered = s.value
			case "rejected":
				v.rejected = s.value
			}
		case "apigw_connector_node_already_held_total":
			v.alreadyHeld = s.value
		case "apigw_connector_kinesis_records_read_total":
			v.records += s.value
		}
	}
	if !haveHeld { // the lag gauge exists only for the shards a worker reads
		v.leases = len(shards)
	}
	return v
}
