// Package scaledown is the `kubectl sts scale-down` command; it also holds
// the options shared with `kubectl sts cleanup-pvcs`.
package scaledown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/scaledown"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// Options holds the flags of `kubectl sts scale-down` and
// `kubectl sts cleanup-pvcs`.
type Options struct {
	*cmdutil.Options

	Name string
	// Replicas is --replicas; ReplicasSet says it was given.
	Replicas    int32
	ReplicasSet bool
	// Cleanup is set by cleanup: no scale, leftovers of removed ordinals
	// only; CleanupSlots (cleanup, not its alias cleanup-pvcs) includes
	// replication slots, Slots are those named with --slot.
	Cleanup      bool
	CleanupSlots bool
	Slots        []string

	PVC           string
	PVCSet        bool
	SnapshotClass string
	// EngineFlags is --engine (whose removal steps run) and --container.
	cmdutil.EngineFlags
	SlotNames []string
	AllowZero bool
	Force     bool
	Abort     bool
	cmdutil.ChangeFlags
	cmdutil.TimeoutFlags
	// Output is -o: text, JSON lines, or a kubectl printer of the plan
	// (dry run) or the result.
	Output *cmdutil.OutputFlags

	// Engines is the registry --engine picks from.
	Engines *plugins.Registry
	// Holder names this process in the operation record's lease.
	Holder string
	// LeaseDuration overrides the operation record's lease; tests use it.
	LeaseDuration time.Duration
}

// NewOptions returns the defaults of both commands.
func NewOptions(parent *cmdutil.Options) *Options {
	return &Options{
		Options:     parent,
		EngineFlags: *cmdutil.NewEngineFlags(),
		Output:      cmdutil.NewWorkflowOutputFlags(),
		Engines:     all.New(),
		Holder:      journal.DefaultHolder(),
	}
}

// NewCmdScaleDown returns the scale-down command.
func NewCmdScaleDown(parent *cmdutil.Options) *cobra.Command {
	return NewCmd(NewOptions(parent))
}

// NewCmd returns the scale-down command over o.
func NewCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scale-down NAME --replicas N",
		Short: "Scale down safely: engine removal steps, then PVC cleanup of removed ordinals",
		Long: `Remove the top ordinals of a StatefulSet one at a time, safely.

Before anything changes it prints which pods and PVCs go, and refuses when a
removed ordinal is the database primary, when a PodDisruptionBudget would be
violated at the target count, when a HorizontalPodAutoscaler owns the scale, or
(unless --force) while a rollout is in progress or pods that stay are not Ready.

Then, for each ordinal from the top: the engine's pre-removal step (MongoDB:
rs.remove), scale to that ordinal, wait until the pod is gone, the engine's
post-removal step (PostgreSQL: drop the member's replication slot once it is
inactive), then the PVC action for that ordinal's claims only.

Progress is recorded in the cluster (ConfigMap kubectl-sts.NAME): run the same
command again to resume an interrupted scale-down; --abort drops the record.

--timeout bounds the whole scale-down, --step-timeout each wait of a step. When
--timeout runs out the command stops cleanly as on Ctrl-C and keeps the record.

Exit codes: 0 done (or dry run), 1 refused or failed before any change,
2 bad input, 5 stopped part-way or --timeout ran out (re-run to resume),
130 interrupted. See docs/scale-down.md.`,
		Example: `  # Plan only: print which pods and PVCs would go, change nothing
  kubectl sts scale-down db --replicas 3 --dry-run=client

  # Also let the API server judge the first writes (RBAC, admission, quota)
  kubectl sts scale-down db --replicas 3 --pvc delete --dry-run=server

  # Scale from 5 to 3, deleting the PVCs of ordinals 4 and 3
  kubectl sts scale-down db --replicas 3 --pvc delete --yes

  # Snapshot each removed PVC, wait until the snapshot is ready, then delete the PVC
  kubectl sts scale-down db --replicas 3 --pvc snapshot --snapshot-class csi-snapclass

  # PostgreSQL with non-default slot names
  kubectl sts scale-down db --replicas 2 --engine postgres --slot-name 'replica_{ordinal}'

  # Delete PVCs left behind by earlier scale-downs (same as kubectl sts cleanup-pvcs db)
  kubectl sts scale-down db --pvc delete

  # Drop the record of an interrupted scale-down instead of resuming it
  kubectl sts scale-down db --abort`,
		Args: cmdutil.ExactlyOneName,
		RunE: cmdutil.RunE(o),
	}
	f := cmd.Flags()
	f.Int32Var(&o.Replicas, "replicas", 0, "The replica count to scale down to (lower than the current one)")
	f.StringVar(&o.PVC, "pvc", "", "What to do with the removed ordinals' PVCs: keep, delete or snapshot (default: ask on a terminal, keep otherwise)")
	f.StringVar(&o.SnapshotClass, "snapshot-class", "", "VolumeSnapshotClass for --pvc snapshot (default: the cluster's default class)")
	f.BoolVar(&o.AllowZero, "allow-zero", false, "Allow --replicas 0, which removes every pod")
	AddCommonFlags(o, cmd)
	o.EngineFlags.AddFlags(cmd, o.Engines.Names(), cmdutil.EngineContainerFlag)
	f.StringArrayVar(&o.SlotNames, "slot-name", nil, "Replication slot of a removed member (repeatable); {ordinal} and {pod} are replaced per ordinal (default: the engine's naming rules)")
	f.BoolVar(&o.Force, "force", false, "Proceed although a rollout is in progress or the StatefulSet is not healthy (never skips the primary, PDB or PVC checks)")
	f.BoolVar(&o.Abort, "abort", false, "Drop the record of an interrupted scale-down instead of resuming it; changes nothing else")
	return cmd
}

// AddCommonFlags binds the flags both commands share.
func AddCommonFlags(o *Options, cmd *cobra.Command) {
	o.ChangeFlags.AddFlags(o.Options, cmd)
	o.TimeoutFlags.AddFlags(cmd, scaledown.DefaultTimeout, "each wait of a step (pod gone, slot inactive, snapshot ready, PVC deleted)")
	o.Output.AddFlags(cmd)
	cmdutil.AddTakeOverFlag(cmd.Flags(), o.Options)
}

// Complete notes which of --replicas and --pvc were given, parses
// --dry-run and takes the StatefulSet name.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	o.ReplicasSet = cmd.Flags().Changed("replicas")
	o.PVCSet = cmd.Flags().Changed("pvc")
	if err := o.ChangeFlags.Complete(cmd); err != nil {
		return err
	}
	o.Name = args[0]
	return nil
}

// Validate checks the flags before anything is read from the cluster.
func (o *Options) Validate() error {
	if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
		return cmdutil.UsageErrorf("%q is not a valid StatefulSet name: %s", o.Name, strings.Join(errs, "; "))
	}
	if err := cmdutil.ValidateWorkflowFlags(o.Output, &o.TimeoutFlags, &o.EngineFlags, o.Engines); err != nil {
		return err
	}
	if o.Abort {
		return nil
	}
	switch scaledown.PVCAction(o.PVC) {
	case "", scaledown.PVCKeep, scaledown.PVCDelete, scaledown.PVCSnapshot:
	default:
		return cmdutil.UsageErrorf("invalid --pvc %q: use keep, delete or snapshot", o.PVC)
	}
	if o.Cleanup && !o.CleanupSlots && o.PVC == string(scaledown.PVCKeep) {
		return cmdutil.UsageErrorf("--pvc keep would clean up nothing: use delete or snapshot")
	}
	if o.SnapshotClass != "" && o.PVC != string(scaledown.PVCSnapshot) {
		return cmdutil.UsageErrorf("--snapshot-class applies only with --pvc snapshot")
	}
	if !o.Cleanup && !o.ReplicasSet {
		if o.PVC == string(scaledown.PVCDelete) || o.PVC == string(scaledown.PVCSnapshot) {
			// scale-down --pvc delete with no replica change cleans up.
			o.Cleanup = true
		} else {
			return cmdutil.UsageErrorf("--replicas is required: the replica count to scale down to (or --pvc delete alone to delete PVCs left by earlier scale-downs)")
		}
	}
	if !o.Cleanup && o.Replicas < 0 {
		return cmdutil.UsageErrorf("--replicas must not be negative, got %d", o.Replicas)
	}
	if !o.Cleanup && o.Replicas == 0 && !o.AllowZero {
		return cmdutil.UsageErrorf("--replicas 0 removes every pod and takes the database offline: add --allow-zero if that is what you want")
	}
	if o.Cleanup && len(o.SlotNames) > 0 {
		return cmdutil.UsageErrorf("--slot-name applies only when scaling down")
	}
	for _, s := range o.SlotNames {
		if s == "" {
			return cmdutil.UsageErrorf("--slot-name must not be empty")
		}
	}
	for _, s := range o.Slots {
		if err := scaledown.ValidateSlot(s); err != nil {
			return cmdutil.UsageErrorf("--slot: %v", err)
		}
	}
	return nil
}

// Run plans, shows the plan, asks, and carries it out.
func (o *Options) Run(ctx context.Context) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	deps := o.deps(c)
	if o.Abort {
		return o.abort(ctx, c, deps)
	}
	cfg := o.config(c)
	plan, err := scaledown.Prepare(ctx, cfg, deps)
	if err != nil {
		return o.planError(plan, err)
	}
	if !o.Cleanup && !o.PVCSet && !o.DryRun && !o.Yes && !plan.Resumed && plan.PVC == scaledown.PVCKeep && len(plan.Steps) > 0 && o.canAsk() {
		o.printPlan(plan)
		action, err := o.askPVCAction(plan)
		if err != nil {
			return err
		}
		if action != scaledown.PVCKeep {
			cfg.PVC, cfg.PVCExplicit = action, true
			if plan, err = scaledown.Prepare(ctx, cfg, deps); err != nil {
				return o.planError(plan, err)
			}
			fmt.Fprintf(o.ErrOut, "PVCs of removed ordinals: %s\n", action)
		}
	} else {
		o.printPlan(plan)
	}

	if len(plan.Steps) == 0 && !plan.DropsSlots() {
		if o.Output.Printer() {
			return o.printDocument(kindPlan, plan)
		}
		if o.Output.Human() {
			fmt.Fprintln(o.Out, "Nothing to do.")
		}
		return nil
	}
	if o.DryRun {
		if err := o.withProgress(func(sink progress.Sink) error {
			deps.Sink = sink
			return scaledown.DryRun(ctx, plan, deps)
		}); err != nil {
			return err
		}
		var refused error
		if o.ServerDryRun {
			writes := scaledown.ServerDryRun(ctx, plan, deps)
			refused = kube.CheckDryRun(writes)
			switch {
			case o.Output.Printer():
				return errors.Join(o.printDocument(kindPlan, struct {
					*scaledown.Plan
					ServerDryRun []kube.DryRunWrite `json:"serverDryRun"`
				}{plan, writes}), refused)
			case o.Output.JSON():
				b, err := json.Marshal(struct {
					ServerDryRun []kube.DryRunWrite `json:"serverDryRun"`
				}{writes})
				if err != nil {
					return err
				}
				fmt.Fprintf(o.Out, "%s\n", b)
			default:
				cmdutil.WriteDryRunWrites(o.Out, writes)
			}
		}
		if o.Output.Printer() {
			return o.printDocument(kindPlan, plan)
		}
		if o.Output.Human() {
			fmt.Fprintln(o.Out, "Dry run: nothing was changed.")
		}
		return refused
	}
	if err := o.Confirm(o.Yes, o.question(plan)); err != nil {
		return err
	}
	rctx, cancel := o.TimeoutFlags.Context(ctx)
	defer cancel()
	var res *scaledown.Result
	err = o.withProgress(func(sink progress.Sink) error {
		deps.Sink = sink
		var err error
		res, err = scaledown.Execute(rctx, plan, deps)
		return o.TimeoutFlags.Explain(rctx, mapRunError(err))
	})
	if o.Output.Printer() && res != nil {
		return errors.Join(err, o.printDocument(kindResult, res))
	}
	return err
}

// Kinds of the documents a kubectl printer prints.
const (
	kindPlan   = "ScaleDownPlan"
	kindResult = "ScaleDownResult"
)

// printDocument prints the plan or the result with the kubectl printer -o
// selects (-o name prints the StatefulSet).
func (o *Options) printDocument(kind string, doc any) error {
	ns := ""
	if c, err := o.Client(); err == nil {
		ns = c.Namespace
	}
	if o.Cleanup {
		kind = strings.Replace(kind, "ScaleDown", "CleanupPVCs", 1)
	}
	return o.Output.Print(o.Out, kind, doc, cmdutil.StatefulSetRef(ns, o.Name))
}

func (o *Options) config(c *kube.Client) scaledown.Config {
	return scaledown.Config{
		Namespace:     c.Namespace,
		Name:          o.Name,
		Replicas:      o.Replicas,
		Cleanup:       o.Cleanup,
		PVC:           scaledown.PVCAction(o.PVC),
		PVCExplicit:   o.PVCSet,
		SnapshotClass: o.SnapshotClass,
		AllowZero:     o.AllowZero,
		Force:         o.Force,
		Timeout:       o.StepTimeout,
		SlotNames:     o.SlotNames,
		Container:     o.Container,
		CleanupSlots:  o.CleanupSlots,
		Slots:         o.Slots,
	}
}

func (o *Options) deps(c *kube.Client) scaledown.Deps {
	d := scaledown.Deps{
		Kube:          c.Kube,
		Exec:          c.Exec,
		Events:        kube.APIEventRecorder{Client: c.Kube, Now: o.Now},
		Now:           o.Now,
		Holder:        o.Holder,
		LeaseDuration: o.LeaseDuration,
		TakeOver:      o.TakeOver,
	}
	engines, choice := o.Engines, o.Engine
	if engines == nil {
		engines = plugins.NewRegistry()
	}
	d.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) {
		return engines.Detect(sts, choice)
	}
	// Only a snapshot uses it; without one (fakes) the snapshot path
	// reports what is missing.
	d.Dynamic = c.Dynamic
	return d
}

func (o *Options) abort(ctx context.Context, c *kube.Client, d scaledown.Deps) error {
	op := scaledown.Operation
	if o.Cleanup {
		op = scaledown.CleanupOperation
	}
	rec, err := scaledown.Abort(ctx, c.Namespace, o.Name, op, d)
	if err != nil {
		return o.planError(nil, err)
	}
	fmt.Fprintf(o.Out, "Dropped the record of the interrupted %s of statefulset %s (started %s).\n", rec.Operation, o.Name, rec.Started.UTC().Format(time.RFC3339))
	var st scaledown.State
	if rec.DecodeState(&st) == nil && rec.Operation == scaledown.Operation {
		fmt.Fprintf(o.Out, "Nothing else was changed: the StatefulSet keeps its current replica count; check it with: kubectl sts status %s -n %s\n", o.Name, c.Namespace)
	}
	return nil
}

// planError maps the preflight's errors to exit codes, printing the plan
// of a refused scale-down first so the user sees what was refused.
func (o *Options) planError(plan *scaledown.Plan, err error) error {
	var invalid *scaledown.InvalidError
	var noSnap *scaledown.SnapshotAPIMissingError
	var refused *scaledown.RefusedError
	var held *journal.HeldError
	switch {
	case errors.As(err, &invalid), errors.As(err, &noSnap):
		return cmdutil.UsageErrorf("%v", err)
	case errors.As(err, &refused):
		if plan != nil {
			o.printPlan(plan)
		}
		return cmdutil.WithExitCode(cmdutil.ExitFailed, err)
	case errors.As(err, &held):
		return cmdutil.WithExitCode(cmdutil.ExitFailed, err)
	}
	return err
}

// mapRunError gives a run that stopped part-way the exit code that says a
// person must look.
func mapRunError(err error) error {
	var stopped *scaledown.StoppedError
	if errors.As(err, &stopped) {
		return cmdutil.WithExitCode(cmdutil.ExitNeedsAttention, err)
	}
	return err
}

func (o *Options) question(p *scaledown.Plan) string {
	var pods, deleted []string
	for _, s := range p.Steps {
		if s.Done {
			continue
		}
		pods = append(pods, s.Pod)
		for _, c := range s.PVCs {
			if c.Action == scaledown.PVCDelete || c.Action == scaledown.PVCSnapshot {
				deleted = append(deleted, c.Name)
			}
		}
	}
	var q string
	if p.Operation == scaledown.CleanupOperation {
		var parts []string
		if len(deleted) > 0 {
			q = fmt.Sprintf("delete %d PVCs of statefulset %s (%s)", len(deleted), p.StatefulSet, strings.Join(deleted, ", "))
			if p.PVC == scaledown.PVCSnapshot {
				q += " after snapshotting them"
			}
			parts = append(parts, q)
		}
		var slots []string
		for _, l := range p.Leftovers {
			if l.Drop {
				slots = append(slots, l.Name)
			}
		}
		if len(slots) > 0 {
			on := p.Leftovers[0].On
			parts = append(parts, fmt.Sprintf("drop %d replication %s on %s (%s)", len(slots), plural(len(slots), "slot", "slots"), on, strings.Join(slots, ", ")))
		}
		if len(parts) == 0 {
			return fmt.Sprintf("Finish the interrupted cleanup of statefulset %s?", p.StatefulSet)
		}
		q = strings.Join(parts, ", and ")
		return strings.ToUpper(q[:1]) + q[1:] + "?"
	}
	q = fmt.Sprintf("Scale down statefulset %s to %d replicas, removing %s", p.StatefulSet, p.To, strings.Join(pods, ", "))
	if len(deleted) > 0 {
		q += fmt.Sprintf(", and delete PVCs %s", strings.Join(deleted, ", "))
		if p.PVC == scaledown.PVCSnapshot {
			q += " after snapshotting them"
		}
	}
	return q + "?"
}

// canAsk reports whether a question can be answered on a terminal.
func (o *Options) canAsk() bool {
	return o.Output.Human() && o.StdinIsTerminal != nil && o.StdinIsTerminal()
}

func (o *Options) askPVCAction(p *scaledown.Plan) (scaledown.PVCAction, error) {
	fmt.Fprintf(o.ErrOut, "What should happen to the PVCs of the removed ordinals? [k]eep (default), [d]elete, [s]napshot then delete: ")
	line, err := readLine(o.In)
	if err != nil && line == "" {
		return "", fmt.Errorf("no answer read: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "k", "keep":
		return scaledown.PVCKeep, nil
	case "d", "delete":
		return scaledown.PVCDelete, nil
	case "s", "snapshot":
		return scaledown.PVCSnapshot, nil
	}
	return "", cmdutil.UsageErrorf("unknown answer %q: nothing was changed; pass --pvc keep, delete or snapshot", strings.TrimSpace(line))
}

// readLine reads one line byte by byte, so that a later prompt reading the
// same stream finds the rest of the input.
func readLine(in io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := in.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

func (o *Options) printJSON(v any) {
	b, err := json.Marshal(v)
	if err == nil {
		fmt.Fprintf(o.Out, "%s\n", b)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
