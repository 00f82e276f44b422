// Package rollout is the `kubectl sts rollout` command: a staged partition
// rollout with health gates and automatic rollback, and its resume, undo,
// abort and status subcommands.
package rollout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// Options holds the flags of `kubectl sts rollout NAME --staged`.
type Options struct {
	*cmdutil.Options

	Name   string
	Staged bool

	Steps     []string
	Images    []string
	Env       []string
	Container string
	Patch     string
	Filename  string

	cmdutil.TimeoutFlags
	Soak            time.Duration
	RollbackTimeout time.Duration
	GateExec        string
	GateCmd         string
	// EngineFlags is --engine, whose health gates the steps.
	cmdutil.EngineFlags
	MaxLag string

	PauseAfter     []int
	Interactive    bool
	NoRollback     bool
	FinalPartition int32
	Force          bool

	cmdutil.ChangeFlags
	Output *cmdutil.OutputFlags

	// Engines resolves --engine; nil knows no engine (auto finds none).
	Engines *plugins.Registry

	request rollout.Request
}

// NewCmdRollout returns the rollout command and its subcommands.
func NewCmdRollout(parent *cmdutil.Options) *cobra.Command {
	o := &Options{
		Options:         parent,
		RollbackTimeout: rollout.DefaultRollbackTimeout,
		Output:          cmdutil.NewWorkflowOutputFlags(),
		EngineFlags:     *cmdutil.NewEngineFlags(),
		Engines:         all.New(),
	}
	cmd := &cobra.Command{
		Use:   "rollout NAME --staged [flags]",
		Short: "Roll out a new revision in stages with health gates and automatic rollback",
		Long: `Roll out a new revision of a StatefulSet in planned steps. Each step lowers the update
partition (pods from the highest ordinal down move to the new revision), then waits until
every updated pod is Ready at the new revision and every gate passes. When a gate fails or a
step times out, the rollout rolls back: it restores the previous revision's pod template,
deletes the pods stuck on the bad revision (the StatefulSet controller does not replace a pod
that never becomes Ready) and waits until every pod is Ready on the previous revision.

The new revision is either already applied with the partition holding every pod back (for
example by GitOps), or given here with --image, --env, --patch or -f: the command then
applies the template and a partition holding every pod in one update.

Progress is recorded in the cluster (ConfigMap kubectl-sts.NAME), so an interrupted run
continues where it stopped when run again, from any machine, and two runs never overlap.

--timeout bounds the whole rollout (as kubectl's --timeout does); --step-timeout
bounds each step. When --timeout runs out the rollout stops cleanly as on Ctrl-C,
without rolling back, and keeps its record: run it again, or resume it, to continue.

Exit codes: 0 rolled out, 1 error, 2 bad input (nothing changed), 4 rolled back,
5 needs attention (stopped part-way, --timeout ran out, rollback off or failed,
aborted), 6 paused, 130 interrupted. See docs/rollout.md.`,
		Example: `  # Roll out the template already applied with the partition at the replica count
  kubectl sts rollout db --staged

  # Apply a new image and roll it out: 1 canary pod, then half, then all
  kubectl sts rollout db --staged --image postgres=postgres:16.4 --steps 1,50%,100%

  # Show the plan and change nothing
  kubectl sts rollout db --staged --image postgres=postgres:16.4 --dry-run=client

  # Also let the API server judge the first writes (validation, admission, quota)
  kubectl sts rollout db --staged --image postgres=postgres:16.4 --dry-run=server

  # Let each step soak for 5 minutes and check every updated pod from inside
  kubectl sts rollout db --staged --soak 5m --gate-exec 'pg_isready -q'

  # Ask a local script (e.g. a Prometheus query) between steps; pause after the canary
  kubectl sts rollout db --staged --gate-cmd ./check-error-rate.sh --pause-after 1 --yes

  # Continue, undo, stop, or look at a recorded rollout
  kubectl sts rollout resume db
  kubectl sts rollout undo db
  kubectl sts rollout abort db
  kubectl sts rollout status db`,
		Args: cobra.ArbitraryArgs,
		RunE: cmdutil.RunE(o),
	}
	f := cmd.Flags()
	f.BoolVar(&o.Staged, "staged", false, "Run the staged rollout (required: the mode this command implements)")
	f.StringSliceVar(&o.Steps, "steps", nil, "Pods on the new revision after each step, as counts or percentages of replicas ending at 100% (default: 1 canary, then one at a time)")
	f.StringArrayVar(&o.Images, "image", nil, "Set the image of a container: CONTAINER=IMAGE (repeatable)")
	f.StringArrayVar(&o.Env, "env", nil, "Set (NAME=VALUE) or remove (NAME-) an environment variable in every container, or in --container (repeatable)")
	f.StringVarP(&o.Container, "container", "c", "", "Container for --env and --gate-exec (default: every container for --env, the first for --gate-exec)")
	f.StringVar(&o.Patch, "patch", "", "Strategic merge patch of the StatefulSet (JSON or YAML) that changes only spec.template")
	f.StringVarP(&o.Filename, "filename", "f", "", "StatefulSet manifest whose pod template to roll out ('-' reads standard input)")
	o.TimeoutFlags.AddFlags(cmd, rollout.DefaultStepTimeout, "a step (its pods becoming Ready, its gates passing; the soak comes on top)")
	f.DurationVar(&o.Soak, "soak", 0, "After each step, the updated pods must stay Ready with unchanged restart counts this long")
	f.DurationVar(&o.RollbackTimeout, "rollback-timeout", o.RollbackTimeout, "How long a rollback may take for every pod to be Ready on the previous revision")
	f.StringVar(&o.GateExec, "gate-exec", "", "Command (sh -c) run in each pod a step updated; exit 0 passes")
	f.StringVar(&o.GateCmd, "gate-cmd", "", "Command (sh -c) run on this machine after each step, with KUBECTL_STS_* variables; exit 0 passes")
	o.EngineFlags.AddFlags(cmd, o.Engines.Names(), 0)
	f.StringVar(&o.MaxLag, "max-lag", "", "Engine gate: largest replication lag allowed, as a duration (10s), a byte size (64Mi), or both (10s,64Mi)")
	f.IntSliceVar(&o.PauseAfter, "pause-after", nil, "Pause after these steps until kubectl sts rollout resume (or Enter on a terminal)")
	f.BoolVar(&o.Interactive, "interactive", false, "Pause after every step but the last")
	f.BoolVar(&o.NoRollback, "no-rollback", false, "On a failed gate, stop and leave the pods as they are instead of rolling back")
	f.Int32Var(&o.FinalPartition, "final-partition", 0, "Partition to leave when the rollout succeeds (e.g. the replica count, to hold the next template back)")
	f.BoolVar(&o.Force, "force", false, "Start although the engine reports the replica set unhealthy before the first change")
	o.ChangeFlags.AddFlags(parent, cmd)
	o.Output.AddFlags(cmd)
	cmdutil.AddTakeOverFlag(cmd.PersistentFlags(), parent)

	cmd.AddCommand(
		newCmdResume(parent),
		newCmdUndo(parent),
		newCmdAbort(parent),
		newCmdStatus(parent),
	)
	return cmd
}

// Complete checks that one name is given, parses --dry-run and reads the
// arguments and flags into the workflow request.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	if err := cmdutil.ExactlyOneName(cmd, args); err != nil {
		return err
	}
	if err := o.ChangeFlags.Complete(cmd); err != nil {
		return err
	}
	o.Name = args[0]
	steps, err := rollout.ParseSteps(o.Steps)
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	change, err := o.change()
	if err != nil {
		return err
	}
	bytes, seconds, err := cmdutil.ParseMaxLag(o.MaxLag)
	if err != nil {
		return err
	}
	o.request = rollout.Request{
		Steps:  steps,
		Change: change,
		Gates: rollout.Gates{
			StepTimeout: o.StepTimeout, Soak: o.Soak, RollbackTimeout: o.RollbackTimeout,
			Exec: o.GateExec, ExecContainer: o.Container, Command: o.GateCmd,
			Engine: o.Engine, MaxLagBytes: bytes, MaxLagSeconds: seconds,
		},
		PauseAfter:     o.PauseAfter,
		Interactive:    o.Interactive,
		Force:          o.Force,
		NoRollback:     o.NoRollback,
		FinalPartition: o.FinalPartition,
	}
	return nil
}

func (o *Options) change() (*rollout.Change, error) {
	images, err := rollout.ParseImages(o.Images)
	if err != nil {
		return nil, cmdutil.UsageErrorf("%v", err)
	}
	env, err := rollout.ParseEnv(o.Env)
	if err != nil {
		return nil, cmdutil.UsageErrorf("%v", err)
	}
	c := &rollout.Change{Images: images, Env: env}
	if len(env) > 0 {
		c.Container = o.Container
	}
	if o.Patch != "" {
		p, err := rollout.ParsePatch(o.Patch)
		if err != nil {
			return nil, cmdutil.UsageErrorf("%v", err)
		}
		c.Patch = p
	}
	if o.Filename != "" {
		if o.Patch != "" || len(images) > 0 || len(env) > 0 {
			return nil, cmdutil.UsageErrorf("-f gives the whole pod template; it cannot be combined with --image, --env or --patch")
		}
		data, err := readFile(o.Filename, o.In)
		if err != nil {
			return nil, cmdutil.UsageErrorf("cannot read %s: %v", o.Filename, err)
		}
		ns := ""
		if c, err := o.Client(); err == nil {
			ns = c.Namespace
		}
		t, err := rollout.ParseManifest(data, o.Filename, o.Name, ns)
		if err != nil {
			return nil, cmdutil.UsageErrorf("%v", err)
		}
		c.Template, c.Source = t, o.Filename
	}
	if c.Empty() {
		return nil, nil
	}
	return c, nil
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

// Validate checks the flags before anything is read from the cluster.
func (o *Options) Validate() error {
	if !o.Staged {
		return cmdutil.UsageErrorf("kubectl sts rollout runs staged rollouts only: add --staged (for an unstaged update use kubectl rollout); see kubectl sts rollout --help")
	}
	if err := validateName(o.Name); err != nil {
		return err
	}
	if err := cmdutil.ValidateWorkflowFlags(o.Output, &o.TimeoutFlags, &o.EngineFlags, o.Engines); err != nil {
		return err
	}
	switch {
	case o.RollbackTimeout <= 0:
		return cmdutil.UsageErrorf("--rollback-timeout must be positive, got %s", o.RollbackTimeout)
	case o.Soak < 0:
		return cmdutil.UsageErrorf("--soak cannot be negative, got %s", o.Soak)
	case o.Interactive && len(o.PauseAfter) > 0:
		return cmdutil.UsageErrorf("--interactive pauses after every step; it cannot be combined with --pause-after")
	case o.Interactive && !o.StdinIsTerminal() && !o.DryRun:
		return cmdutil.UsageErrorf("--interactive needs a terminal to approve each step on; without one use --pause-after N and kubectl sts rollout resume")
	case strings.TrimSpace(o.GateExec) == "" && o.GateExec != "":
		return cmdutil.UsageErrorf("--gate-exec is empty")
	case strings.TrimSpace(o.GateCmd) == "" && o.GateCmd != "":
		return cmdutil.UsageErrorf("--gate-cmd is empty")
	case o.FinalPartition < 0:
		return cmdutil.UsageErrorf("--final-partition cannot be negative")
	}
	if o.Container != "" {
		if errs := validation.IsDNS1123Label(o.Container); len(errs) > 0 {
			return cmdutil.UsageErrorf("--container %q is not a container name: %s", o.Container, strings.Join(errs, "; "))
		}
	}
	return nil
}

func validateName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return cmdutil.UsageErrorf("%q is not a valid StatefulSet name: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// runner builds the workflow over the shared client.
func runner(o *cmdutil.Options, name string, engines *plugins.Registry) (*rollout.Runner, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	return &rollout.Runner{
		Server:    c.Server,
		Client:    c.Kube,
		Exec:      c.Exec,
		Namespace: c.Namespace,
		Name:      name,
		Journal:   journal.New(c.Kube, c.Namespace, name, journal.DefaultHolder()).WithClock(o.Now, journal.DefaultLeaseDuration).WithTakeOver(o.TakeOver),
		Events:    kube.APIEventRecorder{Client: c.Kube, Now: o.Now},
		Now:       o.Now,
		Engines:   engines,
		Local:     rollout.ShellRunner{},
	}, nil
}

// Run prepares the plan, prints it, asks for confirmation and runs it.
func (o *Options) Run(ctx context.Context) error {
	r, err := runner(o.Options, o.Name, o.Engines)
	if err != nil {
		return err
	}
	pv, err := r.Prepare(ctx, o.request)
	if err != nil {
		return explain(err)
	}
	question := fmt.Sprintf("Roll out revision %s of statefulset %s/%s in %d steps?", revisionLabel(pv.To), pv.Namespace, pv.StatefulSet, len(pv.Plan.Steps))
	if pv.Mode == rollout.ModeResume {
		question = fmt.Sprintf("Resume the rollout of statefulset %s/%s at step %d of %d?", pv.Namespace, pv.StatefulSet, pv.Done+1, len(pv.Plan.Steps))
	}
	return execute(ctx, o.Options, r, pv, o.ChangeFlags, o.TimeoutFlags, o.Output, withLeaderRestart(question, pv))
}

// withLeaderRestart names, in the question, the extra restart of the
// leader the plan announces, so that confirming the rollout confirms it.
func withLeaderRestart(question string, pv *rollout.Preview) string {
	if l := pv.Leader; l != nil && l.RestartBefore > 0 {
		return strings.TrimSuffix(question, "?") + fmt.Sprintf(", restarting the leader %s in place before step %d?", l.Leader, l.RestartBefore)
	}
	return question
}

// Kinds of the documents -o prints.
const (
	kindPlan   = "RolloutPlan"
	kindStatus = "RolloutStatus"
	kindAbort  = "RolloutAbort"
)

// execute is shared by run, resume and undo: plan, confirmation, progress,
// and with a kubectl printer the recorded operation at the end.
func execute(ctx context.Context, o *cmdutil.Options, r *rollout.Runner, pv *rollout.Preview, change cmdutil.ChangeFlags, timeout cmdutil.TimeoutFlags, output *cmdutil.OutputFlags, question string) error {
	if change.ServerDryRun {
		return serverDryRun(ctx, o, r, pv, output)
	}
	if change.DryRun {
		return printPreview(o, pv, output, true)
	}
	switch {
	case output.Human():
		if err := printPreview(o, pv, output, false); err != nil {
			return err
		}
	case !change.Yes:
		// The document goes to standard output at the end; the plan the
		// question is about goes to standard error.
		writePlan(o.ErrOut, ui.NewTheme(false), pv, false)
	}
	if err := o.Confirm(change.Yes, question); err != nil {
		return err
	}
	printer, err := o.ProgressPrinter(output)
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	r.Sink = printer
	if output.JSON() {
		progress.Reporter{Sink: printer, Operation: rollout.Operation, Now: o.Now}.Emit(progress.Event{
			Kind: "plan", Object: "statefulset/" + pv.StatefulSet, Message: planSummary(pv)})
	}
	if o.StdinIsTerminal != nil && o.StdinIsTerminal() {
		r.Prompt = prompt(o, pv.StatefulSet)
	}
	rctx, cancel := timeout.Context(ctx)
	defer cancel()
	printer.Start()
	err = r.Run(rctx, pv)
	printer.Stop()
	err = timeout.Explain(rctx, explain(err))
	if output.Printer() {
		if rep, serr := r.Status(context.WithoutCancel(ctx)); serr == nil && rep != nil {
			if perr := output.Print(o.Out, kindStatus, rep, cmdutil.StatefulSetRef(r.Namespace, r.Name)); perr != nil && err == nil {
				err = perr
			}
		}
	}
	return err
}

// serverDryRun prints the plan, sends the first writes with dryRun=All and
// reports the API server's answers; a refusal is an error (exit 1).
func serverDryRun(ctx context.Context, o *cmdutil.Options, r *rollout.Runner, pv *rollout.Preview, output *cmdutil.OutputFlags) error {
	writes, err := r.ServerDryRun(ctx, pv)
	if err != nil {
		return explain(err)
	}
	if output.Human() {
		if err := printPreview(o, pv, output, true); err != nil {
			return err
		}
		cmdutil.WriteDryRunWrites(o.Out, writes)
	} else if err := output.Print(o.Out, kindPlan, struct {
		*rollout.Preview
		ServerDryRun []kube.DryRunWrite `json:"serverDryRun"`
	}{pv, writes}, cmdutil.StatefulSetRef(pv.Namespace, pv.StatefulSet)); err != nil {
		return err
	}
	return kube.CheckDryRun(writes)
}

// prompt waits for Enter on the terminal at a pause.
func prompt(o *cmdutil.Options, name string) func(ctx context.Context, step, steps int) <-chan struct{} {
	return func(ctx context.Context, step, steps int) <-chan struct{} {
		fmt.Fprintf(o.ErrOut, "Paused after step %d of %d: press Enter to continue (or run kubectl sts rollout resume %s elsewhere; Ctrl-C stops and keeps the record)\n", step, steps, name)
		done := make(chan struct{})
		go func() {
			// The read cannot be cancelled; the process ends soon after
			// an approval from elsewhere anyway.
			_, err := bufio.NewReader(o.In).ReadString('\n')
			if err == nil {
				close(done)
			}
		}()
		return done
	}
}

// explain maps workflow outcomes to exit codes.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var refused *rollout.RefusedError
	var rolledBack *rollout.RolledBackError
	var attention *rollout.NeedsAttentionError
	var aborted *rollout.AbortedError
	var paused *rollout.PausedError
	var unknown *plugins.UnknownEngineError
	switch {
	case errors.As(err, &refused) && refused.Input:
		return cmdutil.UsageErrorf("%v", err)
	case errors.As(err, &unknown):
		return cmdutil.UsageErrorf("%v", err)
	case errors.As(err, &refused):
		return cmdutil.WithExitCode(cmdutil.ExitFailed, err)
	case errors.As(err, &rolledBack):
		return cmdutil.WithExitCode(cmdutil.ExitRolledBack, err)
	case errors.As(err, &attention), errors.As(err, &aborted):
		return cmdutil.WithExitCode(cmdutil.ExitNeedsAttention, err)
	case errors.As(err, &paused):
		return cmdutil.WithExitCode(cmdutil.ExitPaused, err)
	}
	return err
}

func revisionLabel(rev string) string {
	if rev == "" {
		return "(new template)"
	}
	return rev
}

// printPreview renders the plan: text, or the document with kubectl's
// printer (-o json prints the same document as -o yaml).
func printPreview(o *cmdutil.Options, pv *rollout.Preview, output *cmdutil.OutputFlags, dryRun bool) error {
	if !output.Human() {
		return output.Print(o.Out, kindPlan, pv, cmdutil.StatefulSetRef(pv.Namespace, pv.StatefulSet))
	}
	theme, err := o.Theme()
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	writePlan(o.Out, theme, pv, dryRun)
	return nil
}
