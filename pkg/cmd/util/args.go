package util

import (
	"github.com/spf13/cobra"
)

// NoArgs rejects positional arguments as a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// ExactlyOneName requires the StatefulSet name as the only argument.
func ExactlyOneName(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return UsageErrorf("%s needs the name of a StatefulSet (list them with: kubectl get sts)", cmd.CommandPath())
	default:
		return UsageErrorf("%s takes one StatefulSet name, got %d: %q", cmd.CommandPath(), len(args), args)
	}
}

// NotImplemented is the honest answer of a command whose workflow has not
// landed yet.
func NotImplemented(cmd *cobra.Command) error {
	return WithExitCode(ExitFailed, &notImplementedError{path: cmd.CommandPath()})
}

type notImplementedError struct{ path string }

func (e *notImplementedError) Error() string {
	return e.path + " is not implemented yet in this version"
}
