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

// SubOptions holds the flags of the subcommands resume, undo, abort and
// status: they share one Complete / Validate / Run shape, and differ only
// in the flags they bind and the step they run.
type SubOptions struct {
	*cmdutil.Options
	Name   string
	Output *cmdutil.OutputFlags
	// Change is --dry-run, --yes and --field-manager, for subcommands that
	// change the rollout (resume, undo).
	Change cmdutil.ChangeFlags
	// Timeout is --timeout and --step-timeout of the workflow a
	// subcommand continues (resume, undo).
	Timeout cmdutil.TimeoutFlags
	// RollbackTimeout is undo's --rollback-timeout.
	RollbackTimeout time.Duration
	// Engines resolves the recorded engine of a resumed rollout.
	Engines *plugins.Registry

	changes bool
	run     func(ctx context.Context, o *SubOptions, r *rollout.Runner) error
}

// subcommand describes one subcommand: its help, whether it changes the
// rollout, its extra flags, and the step it runs.
type subcommand struct {
	cmd     cobra.Command
	changes bool
	flags   func(o *SubOptions, cmd *cobra.Command)
	run     func(ctx context.Context, o *SubOptions, r *rollout.Runner) error
}

func newSubcommand(parent *cmdutil.Options, s subcommand) *cobra.Command {
	o := &SubOptions{Options: parent, Output: cmdutil.NewWorkflowOutputFlags(), Engines: all.New(), changes: s.changes, run: s.run}
	cmd := &s.cmd
	cmd.Args = cmdutil.ExactlyOneName
	cmd.RunE = cmdutil.RunE(o)
	if s.changes {
		o.Change.AddFlags(parent, cmd)
	}
	o.Output.AddFlags(cmd)
	if s.flags != nil {
		s.flags(o, cmd)
	}
	return cmd
}

// Complete takes the name and parses --dry-run.
func (o *SubOptions) Complete(cmd *cobra.Command, args []string) error {
	o.Name = args[0]
	if o.changes {
		return o.Change.Complete(cmd)
	}
	return nil
}

// Validate checks the flags before anything is read from the cluster.
func (o *SubOptions) Validate() error {
	if err := validateName(o.Name); err != nil {
		return err
	}
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.RollbackTimeout < 0 {
		return cmdutil.UsageErrorf("--rollback-timeout cannot be negative")
	}
	return o.Timeout.ValidateTimeout()
}

// Run runs the subcommand's step over the shared client.
func (o *SubOptions) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, o.Engines)
	if err != nil {
		return err
	}
	return o.run(ctx, o, r)
}

func newCmdResume(parent *cmdutil.Options) *cobra.Command {
	return newSubcommand(parent, subcommand{
		cmd: cobra.Command{
			Use:   "resume NAME",
			Short: "Continue a paused or interrupted staged rollout",
			Long: `Continue the rollout recorded for a StatefulSet. When a process waits at a pause
(on a terminal, anywhere), it is approved and continues there. Otherwise this command
continues the rollout itself from the step where it stopped, with the recorded plan and gates.
--timeout bounds this run as a whole; each step keeps its recorded step timeout.`,
			Example: `  # Approve the pause, or continue an interrupted rollout here
  kubectl sts rollout resume db --yes

  # Show what is left of the plan
  kubectl sts rollout resume db --dry-run=client`,
		},
		changes: true,
		flags:   func(o *SubOptions, cmd *cobra.Command) { o.Timeout.AddTimeoutFlag(cmd) },
		run:     runResume,
	})
}

// runResume approves a waiting process or resumes the rollout here.
func runResume(ctx context.Context, o *SubOptions, r *rollout.Runner) error {
	if !o.Change.DryRun {
		a, err := r.Approve(ctx)
		if err != nil {
			return explain(err)
		}
		if a != nil {
			if !o.Output.Human() {
				return o.printRecord(ctx, r)
			}
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
	return execute(ctx, o.Options, r, pv, o.Change, o.Timeout, o.Output, question)
}

func newCmdUndo(parent *cmdutil.Options) *cobra.Command {
	return newSubcommand(parent, subcommand{
		cmd: cobra.Command{
			Use:   "undo NAME",
			Short: "Roll back to the previous revision and replace the pods stuck on the bad one",
			Long: `Roll a StatefulSet back to the revision before its rollout: the revision the recorded
rollout started from, else the current revision of a rollout in progress, else the revision
before the current one. The previous pod template is restored with the partition at 0, pods
that are stuck off that revision (not Ready: the controller would wait for them forever) are
deleted so the controller recreates them, and the command waits until every pod is Ready on
the previous revision. Then the partition is set back to its value before the rollout.

Exit codes: 4 rolled back, 5 the rollback did not finish (or --timeout ran out), 1 error,
2 bad input.`,
			Example: `  # Roll back, replacing pods stuck on the bad revision
  kubectl sts rollout undo db --yes

  # Show what would be done
  kubectl sts rollout undo db --dry-run=client`,
		},
		changes: true,
		flags: func(o *SubOptions, cmd *cobra.Command) {
			cmd.Flags().DurationVar(&o.RollbackTimeout, "rollback-timeout", 0, "How long the rollback may take for every pod to be Ready on the previous revision (default: the recorded value, or 10m)")
			o.Timeout.AddTimeoutFlag(cmd)
		},
		run: runUndo,
	})
}

// runUndo rolls back.
func runUndo(ctx context.Context, o *SubOptions, r *rollout.Runner) error {
	pv, err := r.PrepareUndo(ctx, o.RollbackTimeout)
	if err != nil {
		return explain(err)
	}
	question := fmt.Sprintf("Roll back statefulset %s/%s to revision %s?", pv.Namespace, pv.StatefulSet, pv.From)
	return execute(ctx, o.Options, r, pv, o.Change, o.Timeout, o.Output, question)
}

func newCmdAbort(parent *cmdutil.Options) *cobra.Command {
	return newSubcommand(parent, subcommand{
		cmd: cobra.Command{
			Use:   "abort NAME",
			Short: "Stop a staged rollout and leave the pods as they are, the partition holding",
			Long: `Stop the rollout recorded for a StatefulSet. The partition is raised to hold exactly
the pods already on the new revision, so no further pod moves; nothing is rolled back. A
process running the rollout (on any machine) is told to stop and does this itself.
Afterwards start the rollout again to continue from there, or undo it.`,
			Example: `  kubectl sts rollout abort db`,
		},
		flags: func(o *SubOptions, cmd *cobra.Command) { parent.AddFieldManagerFlag(cmd) },
		run:   runAbort,
	})
}

// runAbort aborts.
func runAbort(ctx context.Context, o *SubOptions, r *rollout.Runner) error {
	out, err := r.Abort(ctx)
	if err != nil {
		return explain(err)
	}
	switch {
	case !o.Output.Human():
		return o.Output.Print(o.Out, kindAbort, out, cmdutil.StatefulSetRef(r.Namespace, o.Name))
	case out.Requested:
		fmt.Fprintf(o.Out, "abort requested: %s stops the rollout of statefulset %s (step %d of %d) and holds the partition\n", out.Holder, o.Name, out.Step, out.Steps)
		return nil
	}
	fmt.Fprintf(o.Out, "aborted the rollout of statefulset %s at step %d of %d; the partition holds at %d and the pods stay as they are\n", o.Name, out.Step, out.Steps, out.Partition)
	return nil
}

func newCmdStatus(parent *cmdutil.Options) *cobra.Command {
	return newSubcommand(parent, subcommand{
		cmd: cobra.Command{
			Use:     "status NAME",
			Aliases: []string{"history"},
			Short:   "Show the recorded rollout: plan, step states, holder and history",
			Example: `  kubectl sts rollout status db
  kubectl sts rollout status db -o json
  kubectl sts rollout status db -o jsonpath='{.record.phase}'`,
		},
		run: runStatus,
	})
}

// runStatus prints the record.
func runStatus(ctx context.Context, o *SubOptions, r *rollout.Runner) error {
	rep, err := r.Status(ctx)
	if err != nil {
		return err
	}
	if rep == nil {
		return cmdutil.WithExitCode(cmdutil.ExitFailed, fmt.Errorf("no operation is recorded for statefulset %s in namespace %s", o.Name, r.Namespace))
	}
	if !o.Output.Human() {
		return o.Output.Print(o.Out, kindStatus, rep, cmdutil.StatefulSetRef(r.Namespace, o.Name))
	}
	theme, err := o.Theme()
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	writeReport(o.Out, theme, rep, o.Now())
	return nil
}

// printRecord prints the recorded operation with the selected printer.
func (o *SubOptions) printRecord(ctx context.Context, r *rollout.Runner) error {
	rep, err := r.Status(ctx)
	if err != nil || rep == nil {
		return err
	}
	return o.Output.Print(o.Out, kindStatus, rep, cmdutil.StatefulSetRef(r.Namespace, o.Name))
}
