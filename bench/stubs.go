package bench

import (
	"context"
	"io"
)

func runBroker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error { return nil }
func runGateway(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error { return nil }
func runIngest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error { return nil }
