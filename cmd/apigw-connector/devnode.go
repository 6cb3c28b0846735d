package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

func cmdDevnode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := devnode.RunCommand(ctx, args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errHelp
	case errors.Is(err, devnode.ErrUsage):
		if errors.Is(err, devnode.ErrFlagParse) {
			return errUsage // the flag package printed it, with the usage
		}
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), devnode.ErrUsage.Error()+": "))
	}
	return err
}
