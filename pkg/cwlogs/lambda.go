package cwlogs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// DecodeLambdaEvent extracts the gzip document from a CloudWatch Logs Lambda
// event, {"awslogs":{"data":"<base64 of the gzip document>"}}. Errors are
// *DecodeError ("json" for a malformed event or bad base64, "empty" when data
// is missing).
func DecodeLambdaEvent(payload []byte) ([]byte, error) {
	var ev struct {
		AWSLogs *struct {
			Data *string `json:"data"`
		} `json:"awslogs"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, &DecodeError{Reason: ReasonJSON, Err: fmt.Errorf("parse Lambda event: %w", err)}
	}
	if ev.AWSLogs == nil || ev.AWSLogs.Data == nil {
		return nil, decodeErr(ReasonJSON, "Lambda event has no awslogs.data: not a CloudWatch Logs subscription event")
	}
	if *ev.AWSLogs.Data == "" {
		return nil, decodeErr(ReasonEmpty, "Lambda event has an empty awslogs.data")
	}
	raw, err := base64.StdEncoding.DecodeString(*ev.AWSLogs.Data)
	if err != nil {
		return nil, &DecodeError{Reason: ReasonJSON, Err: fmt.Errorf("decode awslogs.data base64: %w", err)}
	}
	return raw, nil
}
