// Package expandpvc is the `kubectl sts expand-pvc` command.
package expandpvc

import (
	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdExpandPVC returns the command.
func NewCmdExpandPVC(o *cmdutil.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "expand-pvc NAME --size SIZE",
		Short: "Grow the PVCs of a StatefulSet one ordinal at a time and update its template",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.NotImplemented(cmd)
		},
	}
}
