package main

import (
	"context"
	"io"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

func cmdDevnode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return devnode.RunCommand(ctx, args, stdout, stderr)
}
