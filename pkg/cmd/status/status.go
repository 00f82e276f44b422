// Package status is the `kubectl sts status` command.
package status

import (
	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdStatus returns the command.
func NewCmdStatus(o *cmdutil.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a StatefulSet's pods, revisions, PVCs and health",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.NotImplemented(cmd)
		},
	}
}
