// Package expandpvc is the `kubectl sts expand-pvc` command.
package expandpvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// Options holds the flags of `kubectl sts expand-pvc`.
type Options struct {
	*cmdutil.Options

	Name             string
	Size             string
	Claim            string
	Restart          string
	UpdateTemplate   bool
	NoUpdateTemplate bool
	cmdutil.TimeoutFlags
	OnlineResizeWait time.Duration
	DisableEviction  bool
	cmdutil.ChangeFlags
	Force bool
	// EngineFlags is --engine (whose roles order the ordinals, primary
	// last) and --engine-timeout.
	cmdutil.EngineFlags
	// Output is -o: text, JSON lines (plan, events, result), or a kubectl
	// printer of the plan (dry run) or the result.
	Output *cmdutil.OutputFlags

	// Engines are the database engines --engine can name and detect; nil
	// knows none, so the plan orders ordinals by number only.
	Engines *plugins.Registry

	size    resource.Quantity
	restart expand.RestartPolicy
}

// NewCmdExpandPVC returns the command.
func NewCmdExpandPVC(parent *cmdutil.Options) *cobra.Command {
	o := &Options{
		Options:          parent,
		Restart:          string(expand.RestartAuto),
		UpdateTemplate:   true,
		OnlineResizeWait: expand.DefaultOnlineResizeWait,
		EngineFlags:      *cmdutil.NewEngineFlags(),
		Output:           cmdutil.NewWorkflowOutputFlags(),
		Engines:          all.New(),
	}
	cmd := &cobra.Command{
		Use:   "expand-pvc NAME --size SIZE",
		Short: "Grow the PVCs of a StatefulSet one ordinal at a time and update its template",
		Long: `Grow the PersistentVolumeClaims of one volumeClaimTemplate of a StatefulSet to a new
size, one ordinal at a time, then make the template say the new size so that new
ordinals get it too.

Before anything changes, a preflight checks that every claim of the desired ordinals
exists and is Bound, that its StorageClass allows volume expansion, that the size is
not smaller than any current request (a volume cannot shrink), that quotas and limit
ranges leave room, and that the StatefulSet is not in the middle of a rollout. The API
server then checks every change in a dry run. The plan is printed: each claim, its
size now and after, and whether its pod is expected to restart.

Each ordinal in turn (replicas first and the primary last when a database engine is
known, otherwise the highest ordinal first): raise the claim's request, wait for the
storage driver, and, when the file system resize waits for the pod (it did not finish
on the running pod within --online-resize-wait), delete the pod and wait for its
replacement to be Ready and the capacity to show the new size. A failed resize stops
the sequence at once and says how to recover; the other claims are left untouched.

volumeClaimTemplates cannot be edited, so the StatefulSet is then deleted with orphan
propagation (its pods and claims stay) and recreated with the new size, after saving it
in the cluster; the pods are verified to be adopted without a restart. A GitOps tool
that holds the old manifest must be updated, or it will try to put the old size back.

Progress is recorded in the cluster: if the command is interrupted, run it again to
continue from the first ordinal that is not verified.

--timeout bounds the whole expansion, --step-timeout each ordinal (and the template
step). When --timeout runs out the command stops cleanly as on Ctrl-C and keeps the
record.

Exit codes: 0 done; 1 refused by the preflight, not confirmed, or failed before any
change; 2 bad flags; 5 stopped after changes (a failed resize, a step timeout, --timeout
ran out) or claims left waiting for a pod restart; 130 interrupted. See docs/expand-pvc.md.`,
		Example: `  # See the plan without changing anything
  kubectl sts expand-pvc db --size 50Gi --dry-run=client

  # Also let the API server judge each claim's new size (admission, quota)
  kubectl sts expand-pvc db --size 50Gi --dry-run=server

  # Grow every claim of the only volumeClaimTemplate to 50Gi
  kubectl sts expand-pvc db --size 50Gi

  # Pick one template when there are several, without a prompt
  kubectl sts expand-pvc db --claim wal --size 20Gi --yes

  # Storage that can only grow a file system while it is unmounted: restart at once
  kubectl sts expand-pvc db --size 50Gi --restart always

  # Never restart pods; restart them yourself later where needed
  kubectl sts expand-pvc db --size 50Gi --restart never

  # Grow the claims but leave the template (and the StatefulSet object) alone
  kubectl sts expand-pvc db --size 50Gi --no-update-template

  # Continue after an interruption: run the same command again
  kubectl sts expand-pvc db --size 50Gi`,
		Args: cmdutil.ExactlyOneName,
		RunE: cmdutil.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Size, "size", "", "New size of each claim, a Kubernetes quantity such as 50Gi (required)")
	f.StringVar(&o.Claim, "claim", "", "The volumeClaimTemplate to grow; required when the StatefulSet has several")
	f.StringVar(&o.Restart, "restart", o.Restart, "When to restart a pod: auto (only when its file system resize waits for one), always, or never")
	f.BoolVar(&o.UpdateTemplate, "update-template", o.UpdateTemplate, "Make the volumeClaimTemplate say the new size (recreates the StatefulSet, keeping pods and claims)")
	f.BoolVar(&o.NoUpdateTemplate, "no-update-template", false, "Leave the volumeClaimTemplate and the StatefulSet object alone")
	o.TimeoutFlags.AddFlags(cmd, expand.DefaultTimeout, "one ordinal (and the template step)")
	f.BoolVar(&o.DisableEviction, "disable-eviction", false, "Restart pods by deleting them instead of evicting them: bypasses PodDisruptionBudgets, as kubectl drain --disable-eviction does")
	f.DurationVar(&o.OnlineResizeWait, "online-resize-wait", o.OnlineResizeWait, "How long to let a node grow the file system under a running pod before restarting it (--restart auto)")
	o.ChangeFlags.AddFlags(o.Options, cmd)
	cmdutil.AddTakeOverFlag(f, o.Options)
	f.BoolVar(&o.Force, "force", false, "Go ahead while a rollout is under way or pods are not Ready (the refusal says what each risks)")
	o.EngineFlags.AddFlags(cmd, o.engines().Names(), cmdutil.EngineTimeoutFlag)
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete parses --dry-run, takes the argument and resolves the flags
// that depend on each other.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	if err := o.ChangeFlags.Complete(cmd); err != nil {
		return err
	}
	o.Name = args[0]
	if o.NoUpdateTemplate {
		if cmd.Flags().Changed("update-template") && o.UpdateTemplate {
			return cmdutil.UsageErrorf("--update-template and --no-update-template contradict each other: pick one")
		}
		o.UpdateTemplate = false
	}
	return nil
}

// Validate checks every flag before anything is read from the cluster.
func (o *Options) Validate() error {
	if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
		return cmdutil.UsageErrorf("%q is not a valid StatefulSet name: %s", o.Name, strings.Join(errs, "; "))
	}
	size, err := expand.ParseSize(o.Size)
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	o.size = size
	if o.Claim != "" {
		if errs := validation.IsDNS1123Subdomain(o.Claim); len(errs) > 0 {
			return cmdutil.UsageErrorf("--claim %q is not a valid volumeClaimTemplate name: %s", o.Claim, strings.Join(errs, "; "))
		}
	}
	restart, ok := expand.ParseRestartPolicy(o.Restart)
	if !ok {
		return cmdutil.UsageErrorf("--restart %q is not valid: use auto, always or never", o.Restart)
	}
	o.restart = restart
	if err := cmdutil.ValidateWorkflowFlags(o.Output, &o.TimeoutFlags, &o.EngineFlags, o.engines()); err != nil {
		return err
	}
	if o.OnlineResizeWait <= 0 {
		return cmdutil.UsageErrorf("--online-resize-wait must be positive, got %s", o.OnlineResizeWait)
	}
	return nil
}

func (o *Options) engines() *plugins.Registry {
	if o.Engines == nil {
		return plugins.NewRegistry()
	}
	return o.Engines
}

// Run plans, asks, and runs the expansion, mapping the outcome to the exit
// code.
func (o *Options) Run(ctx context.Context) error {
	theme, err := o.Theme()
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	printer, err := o.ProgressPrinter(o.Output)
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	ex := expand.New(expand.Config{
		Client:    c.Kube,
		Exec:      c.Exec,
		Namespace: c.Namespace,
		Name:      o.Name,
		Params: expand.Params{
			Size: o.size, Claim: o.Claim, Restart: o.restart, UpdateTemplate: o.UpdateTemplate,
			Force: o.Force, Timeout: o.StepTimeout, OnlineResizeWait: o.OnlineResizeWait, DisableEviction: o.DisableEviction,
		},
		EngineFor: func(sts *appsv1.StatefulSet) (plugins.Engine, error) {
			e, err := o.engines().Detect(sts, o.Engine)
			if err != nil {
				return nil, cmdutil.UsageErrorf("%v", err)
			}
			return e, nil
		},
		EngineTimeout: o.EngineFlags.Timeout,
		Journal:       journal.New(c.Kube, c.Namespace, o.Name, journal.DefaultHolder()).WithClock(o.Now, journal.DefaultLeaseDuration).WithTakeOver(o.TakeOver),
		Events:        kube.APIEventRecorder{Client: c.Kube, Now: o.Now},
		Sink:          printer,
		Now:           o.Now,
	})

	plan, err := ex.Preflight(ctx)
	var refused *expand.PreflightError
	if errors.As(err, &refused) {
		return cmdutil.WithExitCode(cmdutil.ExitFailed, err)
	}
	if err != nil {
		return err
	}
	if err := o.printPlan(theme, plan); err != nil {
		return err
	}
	if o.DryRun || !plan.Changes() {
		switch {
		case o.Output.Printer():
			return o.Output.Print(o.Out, "ExpandPVCPlan", o.planDocument(plan), cmdutil.StatefulSetRef(plan.Namespace, plan.StatefulSet))
		case !o.Output.Human():
		case o.DryRun:
			if o.ServerDryRun {
				cmdutil.WriteDryRunWrites(o.Out, serverDryRunWrites(plan))
			}
			fmt.Fprintln(o.Out, "Dry run: nothing was changed.")
		default:
			fmt.Fprintf(o.Out, "Nothing to do: every claim already has %s.\n", plan.Size)
		}
		return nil
	}
	if err := o.Confirm(o.Yes, confirmQuestion(plan)); err != nil {
		return err
	}

	rctx, cancel := o.TimeoutFlags.Context(ctx)
	defer cancel()
	printer.Start()
	res, err := ex.Run(rctx, plan)
	printer.Stop()
	err = o.TimeoutFlags.Explain(rctx, err)
	switch {
	case o.Output.JSON():
		o.printResult(res, err)
	case o.Output.Printer() && res != nil:
		if perr := o.Output.Print(o.Out, "ExpandPVCResult", res, cmdutil.StatefulSetRef(plan.Namespace, plan.StatefulSet)); perr != nil {
			return errors.Join(exitError(res, err), perr)
		}
	}
	return exitError(res, err)
}

// exitError maps the run's outcome to the exit code.
func exitError(res *expand.Result, err error) error {
	var failed *expand.ResizeFailedError
	var attention *expand.AttentionError
	switch {
	case err == nil && res != nil && len(res.AwaitingRestart) > 0:
		return cmdutil.WithExitCode(cmdutil.ExitNeedsAttention, fmt.Errorf("%d %s the file system resize until a pod restart (--restart never): %s; restart those pods when it is safe, or run again with --restart auto",
			len(res.AwaitingRestart), plural(len(res.AwaitingRestart), "claim waits for", "claims wait for"), strings.Join(res.AwaitingRestart, ", ")))
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &failed), errors.As(err, &attention):
		return cmdutil.WithExitCode(cmdutil.ExitNeedsAttention, err)
	case res != nil && res.Changed:
		return cmdutil.WithExitCode(cmdutil.ExitNeedsAttention, fmt.Errorf("%w\nthe expansion stopped part-way; run the same command again to continue", err))
	}
	return err
}

func confirmQuestion(plan *expand.Plan) string {
	var parts []string
	if n := len(plan.Pending()); n > 0 {
		parts = append(parts, fmt.Sprintf("grow %d %s of statefulset %s to %s", n, plural(n, "claim", "claims"), plan.StatefulSet, plan.Size))
		if r := plan.Restarts(); len(r) > 0 {
			parts = append(parts, "restarting pods where the file system resize needs it")
		}
	}
	if plan.Template.Update || plan.Recreate {
		parts = append(parts, fmt.Sprintf("recreate statefulset %s (orphaning, then re-adopting its pods) so its template requests %s", plan.StatefulSet, plan.Size))
	}
	if plan.Template.Verify && len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("verify that the recreated statefulset %s adopted its pods", plan.StatefulSet))
	}
	if len(parts) == 0 {
		// Resumed with its work all done: only the record is closed.
		parts = append(parts, fmt.Sprintf("close the record of the interrupted expansion of statefulset %s, whose work is done", plan.StatefulSet))
	}
	q := strings.Join(parts, ", ")
	return strings.ToUpper(q[:1]) + q[1:] + "?"
}

func (o *Options) printResult(res *expand.Result, err error) {
	doc := struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Result     *expand.Result `json:"result"`
		Error      string         `json:"error,omitempty"`
	}{APIVersion: apiVersion, Kind: "ExpandPVCResult", Result: res}
	if err != nil {
		doc.Error = err.Error()
	}
	if b, merr := json.Marshal(doc); merr == nil {
		fmt.Fprintf(o.Out, "%s\n", b)
	}
}

const apiVersion = "kubectl-sts.io/v1alpha1"

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
