// Package cleanuppvcs is the `kubectl sts cleanup-pvcs` command.
package cleanuppvcs

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/scaledown"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// NewCmdCleanupPVCs returns the command.
func NewCmdCleanupPVCs(parent *cmdutil.Options) *cobra.Command {
	return NewCmd(scaledown.NewOptions(parent))
}

// NewCmd returns the command over o; it shares the scale-down's options
// and safety rules.
func NewCmd(o *scaledown.Options) *cobra.Command {
	o.Cleanup = true
	cmd := &cobra.Command{
		Use:   "cleanup-pvcs NAME",
		Short: "Delete PVCs left behind by earlier scale-downs",
		Long: `Delete the PVCs of a StatefulSet's ordinals at or above its replica count, which
earlier scale-downs (kubectl scale, or scale-down --pvc keep) left behind and which
a later scale-up would silently reattach with their old data.

Only PVCs created from this StatefulSet's volumeClaimTemplates are touched: the
name must be <template>-<statefulset>-<ordinal> and the labels must carry the
StatefulSet's selector. A PVC whose ordinal has a pod, or that any pod mounts,
is never deleted. --pvc snapshot takes a VolumeSnapshot of each first and
deletes the PVC only once the snapshot is readyToUse.

Exit codes: 0 done (or nothing to do, or dry run), 1 refused or failed,
2 bad input, 5 stopped part-way (re-run to resume), 130 interrupted.
See docs/scale-down.md.`,
		Example: `  # Show what would be deleted
  kubectl sts cleanup-pvcs db --dry-run=client

  # Delete them without asking
  kubectl sts cleanup-pvcs db --yes

  # Snapshot each first, then delete
  kubectl sts cleanup-pvcs db --pvc snapshot --snapshot-class csi-snapclass`,
		Args: cmdutil.ExactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.PVCSet = cmd.Flags().Changed("pvc")
			if err := o.CompleteDryRun(cmd); err != nil {
				return err
			}
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.PVC, "pvc", "delete", "What to do with each leftover PVC: delete, or snapshot (then delete)")
	f.StringVar(&o.SnapshotClass, "snapshot-class", "", "VolumeSnapshotClass for --pvc snapshot (default: the cluster's default class)")
	f.BoolVar(&o.Abort, "abort", false, "Drop the record of an interrupted cleanup instead of resuming it")
	scaledown.AddCommonFlags(o, cmd)
	return cmd
}
