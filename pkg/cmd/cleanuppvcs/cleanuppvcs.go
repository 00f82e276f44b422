// Package cleanuppvcs is the `kubectl sts cleanup` command (alias
// `cleanup-pvcs`).
package cleanuppvcs

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/scaledown"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// AliasPVCs is the command's former name: called by it, the command
// deletes leftover claims only, as it always did.
const AliasPVCs = "cleanup-pvcs"

// NewCmdCleanup returns the command.
func NewCmdCleanup(parent *cmdutil.Options) *cobra.Command {
	return NewCmd(scaledown.NewOptions(parent))
}

// NewCmd returns the command over o; it shares the scale-down's options
// and safety rules.
func NewCmd(o *scaledown.Options) *cobra.Command {
	o.Cleanup = true
	cmd := &cobra.Command{
		Use:     "cleanup NAME",
		Aliases: []string{AliasPVCs},
		Short:   "Clean up what removed ordinals left behind: PVCs and replication slots",
		Long: `Clean up what earlier scale-downs (kubectl scale, or scale-down --pvc keep) left
behind of the ordinals at or above a StatefulSet's replica count:

- their PVCs, which a later scale-up would silently reattach with their old data.
  Only PVCs created from this StatefulSet's volumeClaimTemplates are touched: the
  name must be <template>-<statefulset>-<ordinal> and the labels must carry the
  StatefulSet's selector. A PVC whose ordinal has a pod, or that any pod mounts,
  is never deleted. --pvc snapshot takes a VolumeSnapshot of each first and
  deletes the PVC only once the snapshot is readyToUse; --pvc keep leaves them.
- their replication slots on the PostgreSQL primary, which keep its WAL (and fill
  its disk) until dropped: physical slots named for a removed ordinal (pg_2,
  slot_pg_2, _cnpg_pg_2, standby_pg_2, repmgr_slot_1002), only while inactive,
  never one a remaining member streams from. A logical slot, or one named
  otherwise (backup_keep), is dropped only when named with --slot.

Called as cleanup-pvcs it handles the PVCs only, as before.

Exit codes: 0 done (or nothing to do, or dry run), 1 refused or failed,
2 bad input, 5 stopped part-way (re-run to resume), 130 interrupted.
See docs/scale-down.md.`,
		Example: `  # Show what would be deleted and dropped
  kubectl sts cleanup db --dry-run=client

  # Delete the leftover PVCs and drop the leftover slots without asking
  kubectl sts cleanup db --yes

  # Drop leftover slots only, and also the slot old_standby, named explicitly
  kubectl sts cleanup db --pvc keep --slot old_standby

  # Snapshot each leftover PVC first, then delete it
  kubectl sts cleanup db --pvc snapshot --snapshot-class csi-snapclass

  # PVCs only (the command's former name)
  kubectl sts cleanup-pvcs db --yes`,
		Args: cmdutil.ExactlyOneName,
		RunE: cmdutil.RunE(options{o}),
	}
	f := cmd.Flags()
	f.StringVar(&o.PVC, "pvc", "delete", "What to do with each leftover PVC: delete, snapshot (then delete), or keep (slots only)")
	f.StringVar(&o.SnapshotClass, "snapshot-class", "", "VolumeSnapshotClass for --pvc snapshot (default: the cluster's default class)")
	f.StringArrayVar(&o.Slots, "slot", nil, "Also drop this replication slot (repeatable), whatever its name or type; still only while inactive and used by no member")
	f.StringVar(&o.Engine, "engine", o.Engine, "Database engine that keeps the slots: auto, postgres, or none (PVCs only)")
	f.StringVarP(&o.Container, "container", "c", "", "Container to run engine commands in (default: the engine's)")
	f.BoolVar(&o.Abort, "abort", false, "Drop the record of an interrupted cleanup instead of resuming it")
	scaledown.AddCommonFlags(o, cmd)
	return cmd
}

// options are the scale-down's, completed as the name the command was
// called by says.
type options struct{ *scaledown.Options }

// Complete notes whether slots are cleaned up (not under the former name,
// which refuses the slot flags) and completes the scale-down's options.
func (o options) Complete(cmd *cobra.Command, args []string) error {
	o.CleanupSlots = cmd.CalledAs() != AliasPVCs
	if !o.CleanupSlots {
		for _, name := range []string{"slot", "engine", "container"} {
			if cmd.Flags().Changed(name) {
				return cmdutil.UsageErrorf("--%s applies to replication slots, which %s does not touch: use kubectl sts cleanup", name, AliasPVCs)
			}
		}
	}
	return o.Options.Complete(cmd, args)
}
