package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// ResumeOptions holds the flags of `kubectl sts rollout resume NAME`.
type ResumeOptions struct {
	*cmdutil.Options
	Name         string
	DryRun       bool
	ServerDryRun bool
	Yes          bool
	Output       string
	Engines      *plugins.Registry
}

func newCmdResume(parent *cmdutil.Options) *cobra.Command {
	o := &ResumeOptions{Options: parent, Engines: all.New()}
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Continue a paused or interrupted staged rollout",
		Long: `Continue the rollout recorded for a StatefulSet. When a process waits at a pause
(on a terminal, anywhere), it is approved and continues there. Otherwise this command
continues the rollout itself from the step where it stopped, with the recorded plan and gates.`,
		Example: `  # Approve the pause, or continue an interrupted rollout here
  kubectl sts rollout resume db --yes

  # Show what is left of the plan
  kubectl sts rollout resume db --dry-run=client`,
		Args: cmdutil.ExactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if err := validateName(o.Name); err != nil {
				return err
			}
			if err := validateOutput(o.Output); err != nil {
				return err
			}
			if err := parseDryRun(cmd, &o.DryRun, &o.ServerDryRun); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addCommonFlags(parent, cmd, &o.DryRun, &o.Yes, &o.Output)
	return cmd
}

// Run approves a waiting process or resumes the rollout here.
func (o *ResumeOptions) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, o.Engines)
	if err != nil {
		return err
	}
	if !o.DryRun {
		a, err := r.Approve(ctx)
		if err != nil {
			return explain(err)
		}
		if a != nil {
			fmt.Fprintf(o.Out, "approved: the rollout of statefulset %s continues after step %d of %d in %s\n", o.Name, a.Step, a.Steps, a.Holder)
			return nil
		}
	}
	pv, err := r.Prepare(ctx, rollout.Request{Resume: true})
	if err != nil {
		return explain(err)
	}
	question := withLeaderRestart(fmt.Sprintf("Resume the rollout of statefulset %s/%s at step %d of %d?", pv.Namespace, pv.StatefulSet, pv.Done+1, len(pv.Plan.Steps)), pv)
	if pv.State().Stage == rollout.StageRollback {
		question = fmt.Sprintf("Continue the rollback of statefulset %s/%s to revision %s?", pv.Namespace, pv.StatefulSet, pv.From)
	}
	return execute(ctx, o.Options, r, pv, dryRunMode{o.DryRun, o.ServerDryRun}, o.Yes, o.Output, question)
}

// UndoOptions holds the flags of `kubectl sts rollout undo NAME`.
type UndoOptions struct {
	*cmdutil.Options
	Name            string
	DryRun          bool
	ServerDryRun    bool
	Yes             bool
	Output          string
	RollbackTimeout time.Duration
}

func newCmdUndo(parent *cmdutil.Options) *cobra.Command {
	o := &UndoOptions{Options: parent}
	cmd := &cobra.Command{
		Use:   "undo NAME",
		Short: "Roll back to the previous revision and replace the pods stuck on the bad one",
		Long: `Roll a StatefulSet back to the revision before its rollout: the revision the recorded
rollout started from, else the current revision of a rollout in progress, else the revision
before the current one. The previous pod template is restored with the partition at 0, pods
that are stuck off that revision (not Ready: the controller would wait for them forever) are
deleted so the controller recreates them, and the command waits until every pod is Ready on
the previous revision. Then the partition is set back to its value before the rollout.

Exit codes: 4 rolled back, 5 the rollback did not finish, 1 error, 2 bad input.`,
		Example: `  # Roll back, replacing pods stuck on the bad revision
  kubectl sts rollout undo db --yes

  # Show what would be done
  kubectl sts rollout undo db --dry-run=client`,
		Args: cmdutil.ExactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if err := validateName(o.Name); err != nil {
				return err
			}
			if err := validateOutput(o.Output); err != nil {
				return err
			}
			if err := parseDryRun(cmd, &o.DryRun, &o.ServerDryRun); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addCommonFlags(parent, cmd, &o.DryRun, &o.Yes, &o.Output)
	cmd.Flags().DurationVar(&o.RollbackTimeout, "rollback-timeout", 0, "How long the rollback may take for every pod to be Ready on the previous revision (default: the recorded value, or 10m)")
	return cmd
}

// Run rolls back.
func (o *UndoOptions) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, nil)
	if err != nil {
		return err
	}
	if o.RollbackTimeout < 0 {
		return cmdutil.UsageErrorf("--rollback-timeout cannot be negative")
	}
	pv, err := r.PrepareUndo(ctx, o.RollbackTimeout)
	if err != nil {
		return explain(err)
	}
	question := fmt.Sprintf("Roll back statefulset %s/%s to revision %s?", pv.Namespace, pv.StatefulSet, pv.From)
	return execute(ctx, o.Options, r, pv, dryRunMode{o.DryRun, o.ServerDryRun}, o.Yes, o.Output, question)
}

// AbortOptions holds the flags of `kubectl sts rollout abort NAME`.
type AbortOptions struct {
	*cmdutil.Options
	Name   string
	Output string
}

func newCmdAbort(parent *cmdutil.Options) *cobra.Command {
	o := &AbortOptions{Options: parent}
	cmd := &cobra.Command{
		Use:   "abort NAME",
		Short: "Stop a staged rollout and leave the pods as they are, the partition holding",
		Long: `Stop the rollout recorded for a StatefulSet. The partition is raised to hold exactly
the pods already on the new revision, so no further pod moves; nothing is rolled back. A
process running the rollout (on any machine) is told to stop and does this itself.
Afterwards start the rollout again to continue from there, or undo it.`,
		Example: `  kubectl sts rollout abort db`,
		Args:    cmdutil.ExactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if err := validateName(o.Name); err != nil {
				return err
			}
			if err := validateOutput(o.Output); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addCommonFlags(parent, cmd, nil, nil, &o.Output)
	parent.AddFieldManagerFlag(cmd)
	return cmd
}

// Run aborts.
func (o *AbortOptions) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, nil)
	if err != nil {
		return err
	}
	out, err := r.Abort(ctx)
	if err != nil {
		return explain(err)
	}
	if o.Output == OutputJSON {
		return writeJSON(o.Out, out)
	}
	if out.Requested {
		fmt.Fprintf(o.Out, "abort requested: %s stops the rollout of statefulset %s (step %d of %d) and holds the partition\n", out.Holder, o.Name, out.Step, out.Steps)
		return nil
	}
	fmt.Fprintf(o.Out, "aborted the rollout of statefulset %s at step %d of %d; the partition holds at %d and the pods stay as they are\n", o.Name, out.Step, out.Steps, out.Partition)
	return nil
}

// StatusOptions holds the flags of `kubectl sts rollout status NAME`.
type StatusOptions struct {
	*cmdutil.Options
	Name   string
	Output string
}

func newCmdStatus(parent *cmdutil.Options) *cobra.Command {
	o := &StatusOptions{Options: parent}
	cmd := &cobra.Command{
		Use:     "status NAME",
		Aliases: []string{"history"},
		Short:   "Show the recorded rollout: plan, step states, holder and history",
		Example: `  kubectl sts rollout status db
  kubectl sts rollout status db -o json`,
		Args: cmdutil.ExactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if err := validateName(o.Name); err != nil {
				return err
			}
			if err := validateOutput(o.Output); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addCommonFlags(parent, cmd, nil, nil, &o.Output)
	return cmd
}

// Run prints the record.
func (o *StatusOptions) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, nil)
	if err != nil {
		return err
	}
	rep, err := r.Status(ctx)
	if err != nil {
		return err
	}
	if rep == nil {
		return cmdutil.WithExitCode(cmdutil.ExitFailed, fmt.Errorf("no operation is recorded for statefulset %s in namespace %s", o.Name, r.Namespace))
	}
	if o.Output == OutputJSON {
		return writeJSON(o.Out, rep)
	}
	theme, err := o.Theme()
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	writeReport(o.Out, theme, rep, o.Now())
	return nil
}
