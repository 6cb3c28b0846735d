package kinesis

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/wallarm/apigw-connector/pkg/lease"
)

// defaultWorkerID names this worker in the lease table: the ECS task id when the container
// metadata endpoint answers (stable for the task's life, readable in the console), else the
// lease.DefaultWorkerID (hostname plus a random suffix) so two processes on one host never share an id.
func defaultWorkerID(ctx context.Context) string {
	if uri := os.Getenv("ECS_CONTAINER_METADATA_URI_V4"); uri != "" {
		if id, err := ecsTaskID(ctx, uri); err == nil && id != "" {
			return id
		}
	}
	return lease.DefaultWorkerID()
}

func ecsTaskID(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(uri, "/")+"/task", nil)
	if err != nil {
		return "", fmt.Errorf("build task metadata request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("get task metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get task metadata: status %d", resp.StatusCode)
	}
	var meta struct {
		TaskARN string `json:"TaskARN"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		return "", fmt.Errorf("decode task metadata: %w", err)
	}
	// arn:aws:ecs:region:account:task/cluster/TASKID (or task/TASKID in old ARN format).
	return meta.TaskARN[strings.LastIndex(meta.TaskARN, "/")+1:], nil
}
