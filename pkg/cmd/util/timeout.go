package util

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// TimeoutFlags is the timeout flag group of every workflow, as in kubectl:
// --timeout bounds the whole operation, --step-timeout each step.
type TimeoutFlags struct {
	// Timeout is --timeout: the whole operation; zero waits as long as
	// the steps take.
	Timeout time.Duration
	// StepTimeout is --step-timeout: each step.
	StepTimeout time.Duration
}

// AddFlags binds --timeout and --step-timeout (default stepDefault; step
// says what one step is).
func (f *TimeoutFlags) AddFlags(cmd *cobra.Command, stepDefault time.Duration, step string) {
	f.StepTimeout = stepDefault
	f.AddTimeoutFlag(cmd)
	cmd.Flags().DurationVar(&f.StepTimeout, "step-timeout", f.StepTimeout, "How long "+step+" may take")
}

// AddTimeoutFlag binds --timeout alone, for a command that continues a
// recorded operation whose steps keep their recorded bounds.
func (f *TimeoutFlags) AddTimeoutFlag(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.Timeout, "timeout", 0, "How long the whole operation may take (0: no limit); when it runs out the command stops cleanly as on Ctrl-C, keeps the record and exits 5: run it again to continue")
}

// Validate refuses a negative --timeout and a --step-timeout that is not
// positive.
func (f *TimeoutFlags) Validate() error {
	if err := f.ValidateTimeout(); err != nil {
		return err
	}
	if f.StepTimeout <= 0 {
		return UsageErrorf("--step-timeout must be positive, got %s", f.StepTimeout)
	}
	return nil
}

// ValidateTimeout refuses a negative --timeout, for a command bound with
// AddTimeoutFlag alone.
func (f *TimeoutFlags) ValidateTimeout() error {
	if f.Timeout < 0 {
		return UsageErrorf("--timeout cannot be negative, got %s (0 means no limit)", f.Timeout)
	}
	return nil
}

// TimeoutError says the whole operation ran out of --timeout.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the operation did not finish within --timeout %s", e.Timeout)
}

// Context bounds ctx by --timeout. When the time runs out, ctx is
// cancelled as an interrupt cancels it, so the workflow stops at a safe
// point and keeps its record; Explain then says it was the timeout.
func (f *TimeoutFlags) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(f.Timeout, func() { cancel(&TimeoutError{Timeout: f.Timeout}) })
	return cctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// Explain turns the stop of a workflow whose --timeout ran out into exit
// code 5 (stopped part-way, resumable) with a message saying so; other
// errors pass unchanged.
func (f *TimeoutFlags) Explain(ctx context.Context, err error) error {
	var te *TimeoutError
	if err == nil || !errors.As(context.Cause(ctx), &te) || !errors.Is(err, context.Canceled) {
		return err
	}
	return WithExitCode(ExitNeedsAttention, fmt.Errorf("%v and stopped cleanly, keeping its record: %s", te, stripCanceled(err)))
}

func stripCanceled(err error) string {
	return strings.ReplaceAll(err.Error(), ": "+context.Canceled.Error(), "")
}
