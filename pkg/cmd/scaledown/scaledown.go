// Package scaledown is the `kubectl sts scale-down` command.
package scaledown

import (
	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdScaleDown returns the command.
func NewCmdScaleDown(o *cmdutil.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "scale-down NAME --replicas N",
		Short: "Scale down safely: engine removal steps, then PVC cleanup of removed ordinals",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.NotImplemented(cmd)
		},
	}
}
