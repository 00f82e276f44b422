// Package cleanuppvcs is the `kubectl sts cleanup-pvcs` command.
package cleanuppvcs

import (
	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdCleanupPVCs returns the command.
func NewCmdCleanupPVCs(o *cmdutil.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup-pvcs NAME",
		Short: "Delete PVCs left behind by earlier scale-downs",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.NotImplemented(cmd)
		},
	}
}
