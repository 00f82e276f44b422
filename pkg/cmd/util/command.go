package util

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Command is kubectl's anatomy of a command: Complete fills the options
// from the arguments and the flags that need the command to be read,
// Validate refuses bad input before anything is read from the cluster, and
// Run does the work.
type Command interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// RunE returns the cobra RunE of o: Complete, Validate, then Run with the
// command's context, stopping at the first error.
func RunE(o Command) func(cmd *cobra.Command, args []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}

// ValidateWorkflowFlags checks the flag groups every workflow shares, in
// the order each workflow reports them: -o, --timeout and --step-timeout,
// then the engine flags against engines.
func ValidateWorkflowFlags(output *OutputFlags, timeout *TimeoutFlags, engine *EngineFlags, engines *plugins.Registry) error {
	if err := output.Validate(); err != nil {
		return err
	}
	if err := timeout.Validate(); err != nil {
		return err
	}
	return engine.Validate(engines)
}
