package util

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
)

// SignalContext returns a context cancelled by the first SIGINT or SIGTERM,
// so a workflow can stop cleanly and record where it was. A second signal
// calls exit(ExitInterrupted) for users who really want out now.
func SignalContext(parent context.Context, errOut io.Writer, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(errOut, "interrupted: stopping cleanly (press Ctrl-C again to exit at once)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintf(errOut, "interrupted again: exiting at once; the lease of a running operation stays until it expires (%s after its last heartbeat): run the same command again then, or now with --take-over\n", journal.DefaultLeaseDuration)
			exit(ExitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
