package testbed

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// Main starts one cluster for a test package, stores it in *into, runs the
// tests and stops the cluster. Use it from TestMain:
//
//	var cluster *testbed.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(testbed.Main(m, testbed.Options{}, &cluster)) }
//
// A test bed that cannot start (binaries not built, say) fails the package:
// it is never skipped. $KUBECTL_STS_TESTBED_VERSION=compat runs the package
// on the old minor (see Compat): the compatibility suite runs the existing
// scenarios that way. SIGINT and SIGTERM stop the cluster, and any other
// cluster a test of this process started, before exiting.
func Main(m *testing.M, opts Options, into **Cluster) int {
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	if opts.Version == Current {
		v, err := VersionFromEnv()
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			return 1
		}
		opts.Version = v
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	c, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the test bed did not start: %v\n", err)
		return 1
	}
	*into = c

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "testbed: interrupted; deleting the clusters of this process\n")
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = c.Stop(stopCtx)
			stopOwnClusters(c.BinDir, opts.Logf)
			os.Exit(130)
		case <-done:
		}
	}()

	code := m.Run()
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
