// Package rollout is the `kubectl sts rollout` command.
package rollout

import (
	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdRollout returns the command.
func NewCmdRollout(o *cmdutil.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "rollout NAME --staged",
		Short: "Roll out a new revision in stages with health gates and automatic rollback",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.NotImplemented(cmd)
		},
	}
}
