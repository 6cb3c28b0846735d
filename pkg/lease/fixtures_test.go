package lease

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Lease-table fixtures under testdata/ are in the item format of
// `aws dynamodb scan --output json` (DynamoDB JSON): {"Items": [...]} or a
// bare array of items.

// loadFixture reads a fixture's items, every DynamoDB attribute type included.
func loadFixture(t testing.TB, path string) []map[string]types.AttributeValue {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	items, err := parseDynamoJSON(b)
	if err != nil {
		t.Fatalf("load fixture %s: %v", path, err)
	}
	return items
}

func parseDynamoJSON(b []byte) ([]map[string]types.AttributeValue, error) {
	var raw []map[string]json.RawMessage
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("parse items: %w", err)
		}
	} else {
		var out struct{ Items []map[string]json.RawMessage }
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("parse scan output: %w", err)
		}
		raw = out.Items
	}
	items := make([]map[string]types.AttributeValue, 0, len(raw))
	for i, r := range raw {
		item, err := decodeAttrMap(r)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		items = append(items, item)
	}
	return items, nil
}

func decodeAttrMap(m map[string]json.RawMessage) (map[string]types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(m))
	for name, v := range m {
		av, err := decodeAttr(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = av
	}
	return out, nil
}

// decodeAttr decodes one {"<type>": value}; exactly one type, as DynamoDB
// itself requires.
func decodeAttr(b json.RawMessage) (types.AttributeValue, error) {
	var typed map[string]json.RawMessage
	if err := json.Unmarshal(b, &typed); err != nil {
		return nil, fmt.Errorf("decode attribute value: %w", err)
	}
	if len(typed) != 1 {
		return nil, fmt.Errorf("decode attribute value: want exactly one type, got %d", len(typed))
	}
	for typ, v := range typed {
		return decodeTyped(typ, v)
	}
	panic("unreachable")
}

func decodeTyped(typ string, v json.RawMessage) (types.AttributeValue, error) {
	wrap := func(err error) error { return fmt.Errorf("decode %s value: %w", typ, err) }
	switch typ {
	case "S":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, wrap(err)
		}
		return &types.AttributeValueMemberS{Value: s}, nil
	case "N":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, wrap(err)
		}
		return &types.AttributeValueMemberN{Value: s}, nil
	case "B":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, wrap(err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, wrap(err)
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	case "SS", "NS", "BS":
		var ss []string
		if err := json.Unmarshal(v, &ss); err != nil {
			return nil, wrap(err)
		}
		switch typ {
		case "SS":
			return &types.AttributeValueMemberSS{Value: ss}, nil
		case "NS":
			return &types.AttributeValueMemberNS{Value: ss}, nil
		}
		bs := make([][]byte, len(ss))
		for i, s := range ss {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, wrap(err)
			}
			bs[i] = b
		}
		return &types.AttributeValueMemberBS{Value: bs}, nil
	case "M":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return nil, wrap(err)
		}
		inner, err := decodeAttrMap(m)
		if err != nil {
			return nil, wrap(err)
		}
		return &types.AttributeValueMemberM{Value: inner}, nil
	case "L":
		var l []json.RawMessage
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, wrap(err)
		}
		out := make([]types.AttributeValue, len(l))
		for i, e := range l {
			av, err := decodeAttr(e)
			if err != nil {
				return nil, wrap(fmt.Errorf("element %d: %w", i, err))
			}
			out[i] = av
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case "BOOL":
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, wrap(err)
		}
		return &types.AttributeValueMemberBOOL{Value: b}, nil
	case "NULL":
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, wrap(err)
		}
		if !b {
			return nil, wrap(fmt.Errorf("NULL must be true"))
		}
		return &types.AttributeValueMemberNULL{Value: true}, nil
	default:
		return nil, fmt.Errorf("decode attribute value: unknown type %q", typ)
	}
}

// loadFixtureTable creates a table (as this package creates it) and puts
// the fixture's items into it.
func loadFixtureTable(t *testing.T, db *dynamodb.Client, name, path string) []map[string]types.AttributeValue {
	t.Helper()
	createTable(t, db, name)
	items := loadFixture(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, it := range items {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: it}); err != nil {
			t.Fatalf("put %s item %s: %v", path, itemKey(it), err)
		}
	}
	return items
}
