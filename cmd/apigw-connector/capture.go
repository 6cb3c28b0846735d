package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/capture"
)

func cmdCapture(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := capture.RunCommand(ctx, args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errHelp
	case errors.Is(err, capture.ErrUsage):
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), capture.ErrUsage.Error()+": "))
	}
	return err
}
