// Package status is the `kubectl sts status` command.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// The command's own formats of -o; kubectl's printers (json, yaml, name,
// jsonpath, go-template) print the JSON document.
const (
	OutputTable = "table"
	OutputWide  = "wide"
)

// Options holds the flags of `kubectl sts status`.
type Options struct {
	*cmdutil.Options

	// Name is the StatefulSet; empty lists every StatefulSet in scope.
	Name string
	// Output is -o: the table, wide, or a kubectl printer of the document.
	Output        *cmdutil.OutputFlags
	Watch         bool
	AllNamespaces bool
	// Selector is -l: a label selector over the listed StatefulSets.
	Selector   string
	StuckAfter time.Duration
	// MaxLag is --max-lag; Validate parses it into maxLag.
	MaxLag string
	// MaxSlotWAL is --max-slot-wal: how much WAL an inactive slot may
	// retain before status names it.
	MaxSlotWAL string

	// EngineFor picks the database engine whose members fill the ROLE,
	// LAG and SLOTS columns. Nil (or a nil engine) means no engine: the
	// report has Kubernetes facts only. The --engine flag sets it.
	EngineFor func(sts *appsv1.StatefulSet) (plugins.Engine, error)
	// EngineFlags is --engine (Validate turns it into EngineFor when that
	// is unset) and --engine-timeout, the bound of each engine query.
	cmdutil.EngineFlags
	// ListEngineTimeout bounds each StatefulSet's engine in a list (-A);
	// zero means status.DefaultListEngineTimeout.
	ListEngineTimeout time.Duration

	// WatchMinInterval is the shortest time between two redraws of
	// --watch, so bursts of events draw once.
	WatchMinInterval time.Duration
	// WatchRefresh redraws --watch this often without events, so ages and
	// the stuck threshold move on.
	WatchRefresh time.Duration
	// WatchEngineInterval is the shortest time between two engine queries
	// under --watch.
	WatchEngineInterval time.Duration

	client     *kube.Client
	server     kube.Server
	theme      ui.Theme
	maxLag     plugins.HealthOptions
	maxSlotWAL int64
}

// NewCmdStatus returns the status command.
func NewCmdStatus(parent *cmdutil.Options) *cobra.Command {
	return NewCmd(NewOptions(parent))
}

// NewOptions returns the command's options with their defaults.
func NewOptions(parent *cmdutil.Options) *Options {
	return &Options{
		Options:             parent,
		EngineFlags:         *cmdutil.NewEngineFlags(),
		Output:              cmdutil.NewOutputFlags(OutputTable, OutputWide),
		StuckAfter:          status.DefaultStuckAfter,
		WatchMinInterval:    500 * time.Millisecond,
		WatchRefresh:        5 * time.Second,
		WatchEngineInterval: 15 * time.Second,
	}
}

// NewCmd returns the status command bound to o; callers that need to set
// fields without flags (EngineFor, the watch intervals) build o first.
func NewCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a StatefulSet's pods, revisions, PVCs and health",
		Long: `Show one StatefulSet on one screen: its replicas, current and update revisions,
update strategy and partition, one row per ordinal (missing pods included) with the
pod's status, readiness, revision, restarts, node and age and each PVC's requested
size, capacity and resize state, PVCs left over from removed ordinals, and a verdict
with reasons and what to run about them.

Without NAME, or with -A, list every StatefulSet in scope with a one-line verdict.

Exit codes: 0 healthy, 3 not healthy (the verdict says why: Progressing,
NeedsAttention or Degraded), 1 error, 2 bad input. See docs/status.md.`,
		Example: `  # One StatefulSet, as a table
  kubectl sts status db -n prod

  # More columns: hashes, IPs, images, storage classes, volumes
  kubectl sts status db -o wide

  # The model as JSON (schema in docs/status.md)
  kubectl sts status db -o json

  # One field of it, as kubectl's jsonpath prints it
  kubectl sts status db -o jsonpath='{.verdict.state}'

  # Redraw on every change until Ctrl-C
  kubectl sts status db --watch

  # Every StatefulSet in every namespace, one line each
  kubectl sts status -A

  # Only the StatefulSets labelled tier=db, in every namespace
  kubectl sts status -A -l tier=db

  # Call a pod stuck when it has not been Ready for 2 minutes
  kubectl sts status db --stuck-after 2m

  # Name replicas more than 30s or 64Mi behind
  kubectl sts status db --max-lag 30s,64Mi`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageErrorf("%s takes at most one StatefulSet name, got %d: %q", cmd.CommandPath(), len(args), args)
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	f := cmd.Flags()
	o.Output.AddFlags(cmd)
	f.BoolVarP(&o.Watch, "watch", "w", false, "Redraw whenever the StatefulSet, its pods or its PVCs change, until interrupted")
	f.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "List the StatefulSets of every namespace")
	f.StringVarP(&o.Selector, "selector", "l", "", "Label selector over the listed StatefulSets (e.g. -l 'tier=db,env!=dev'); supports '=', '==', '!=', 'in', 'notin'")
	f.DurationVar(&o.StuckAfter, "stuck-after", o.StuckAfter, "How long a pod may stay not Ready before it counts as stuck")
	f.StringVar(&o.MaxLag, "max-lag", "", "Name replicas whose replication lag exceeds this, as a duration (10s), a byte size (64Mi), or both (10s,64Mi)")
	f.StringVar(&o.MaxSlotWAL, "max-slot-wal", "256Mi", "Name inactive replication slots that retain more WAL than this")
	o.EngineFlags.AddFlags(cmd, all.New().Names(), cmdutil.EngineTimeoutFlag)
	return cmd
}

// Complete takes the positional arguments.
func (o *Options) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Name = args[0]
		if o.Name == "" {
			return cmdutil.UsageErrorf("the StatefulSet name is empty (list them with: kubectl get sts)")
		}
	}
	return nil
}

// Validate checks the flags before anything is read from the cluster.
func (o *Options) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Name != "" {
		if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
			return cmdutil.UsageErrorf("%q is not a valid StatefulSet name: %s", o.Name, strings.Join(errs, "; "))
		}
		if o.AllNamespaces {
			return cmdutil.UsageErrorf("a StatefulSet name cannot be combined with --all-namespaces: pick its namespace with -n")
		}
		if o.Selector != "" {
			return cmdutil.UsageErrorf("a StatefulSet name cannot be combined with --selector: give one or the other")
		}
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return cmdutil.UsageErrorf("invalid --selector %q: %v", o.Selector, err)
		}
	}
	if o.Watch && o.Name == "" {
		return cmdutil.UsageErrorf("--watch needs the name of a StatefulSet (list them with: kubectl get sts)")
	}
	if o.StuckAfter <= 0 {
		return cmdutil.UsageErrorf("--stuck-after must be positive, got %s", o.StuckAfter)
	}
	bytes, seconds, err := cmdutil.ParseMaxLag(o.MaxLag)
	if err != nil {
		return err
	}
	o.maxLag = plugins.HealthOptions{MaxLagBytes: bytes, MaxLagSeconds: seconds}
	if o.MaxSlotWAL != "" {
		q, err := resource.ParseQuantity(o.MaxSlotWAL)
		if err != nil || q.Sign() <= 0 {
			return cmdutil.UsageErrorf("--max-slot-wal %q is not a positive byte size (e.g. 256Mi)", o.MaxSlotWAL)
		}
		o.maxSlotWAL = q.Value()
	}
	if o.EngineFor == nil {
		engines := all.New()
		if err := o.EngineFlags.Validate(engines); err != nil {
			return err
		}
		engine := o.Engine
		o.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) { return engines.Detect(sts, engine) }
	}
	return nil
}

// Run reads the cluster, prints the report and maps the verdict to the exit
// code.
func (o *Options) Run(ctx context.Context) error {
	theme, err := o.Theme()
	if err != nil {
		return cmdutil.UsageErrorf("%v", err)
	}
	o.theme = theme
	c, err := o.Client()
	if err != nil {
		return err
	}
	o.client = c
	// Which of the server's fields can be trusted depends on its version;
	// a server that does not say is judged as the newest tested one.
	o.server, _ = c.Server(ctx)
	switch {
	case o.Watch:
		return o.watch(ctx)
	case o.Name == "":
		return o.list(ctx)
	}
	r, err := status.Build(ctx, c.Kube, c.Namespace, o.Name, o.buildOptions())
	if err != nil {
		return o.explainNotFound(ctx, err)
	}
	status.SetOperation(r, o.operation(ctx, c.Namespace, o.Name), o.statusOptions())
	if err := o.print(o.Out, r); err != nil {
		return err
	}
	if !r.Verdict.Healthy {
		return cmdutil.WithExitCode(cmdutil.ExitDegraded, nil)
	}
	return nil
}

// operation reads the StatefulSet's operation record (configmap
// kubectl-sts.NAME) and returns the unfinished operation it holds, with its
// lease when a process holds it (journal.Held, the rule every command
// applies). A record that cannot be read is left out of the report: the
// status Role needs no access to config maps.
func (o *Options) operation(ctx context.Context, namespace, name string) *status.OperationStatus {
	j := journal.New(o.client.Kube, namespace, name, "")
	if o.Now != nil {
		j = j.WithClock(o.Now, journal.DefaultLeaseDuration)
	}
	rec, err := j.Load(ctx)
	if err != nil || rec == nil || rec.Phase.Finished() {
		return nil
	}
	op := &status.OperationStatus{Operation: rec.Operation, Phase: string(rec.Phase), Started: rec.Started,
		Holder: rec.Holder, Heartbeat: rec.Heartbeat}
	if held := j.Held(rec); held != nil {
		op.LeaseExpires = &held.Expires
	}
	var st rollout.State
	if rec.Operation == rollout.Operation && rec.DecodeState(&st) == nil {
		op.From, op.To = st.From, st.To
	}
	return op
}

// explainDeletedByExpansion explains a missing StatefulSet that an
// expand-pvc deleted in its template step and has not recreated yet, or
// returns nil.
func (o *Options) explainDeletedByExpansion(ctx context.Context, ns string) error {
	j := journal.New(o.client.Kube, ns, o.Name, "")
	if o.Now != nil {
		j = j.WithClock(o.Now, journal.DefaultLeaseDuration)
	}
	rec, err := j.Load(ctx)
	if err != nil {
		return nil
	}
	p := expand.StoppedInTemplateStep(rec)
	if p == nil {
		return nil
	}
	msg := fmt.Sprintf("StatefulSet %q not found in namespace %q: an interrupted expand-pvc of claim %s to %s deleted it to update its volumeClaimTemplate (its pods and claims were kept) and saved a copy in configmap %s",
		o.Name, ns, p.Claim, p.Size, journal.ConfigMapName(o.Name))
	if held := j.Held(rec); held != nil {
		return fmt.Errorf("%s; %s is recreating it now (last heartbeat %s ago; its lease expires at %s): wait for it; if that process was killed, run the same expand-pvc command after the lease expires (or now with --take-over)",
			msg, held.Holder, held.Age().Round(time.Second), held.Expires.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%s; recreate it by finishing that run: kubectl sts expand-pvc %s --claim %s --size %s -n %s",
		msg, o.Name, p.Claim, p.Size, ns)
}

func (o *Options) statusOptions() status.Options {
	return status.Options{StuckAfter: o.StuckAfter, MaxLag: o.maxLag, SlotRetainedBytes: o.maxSlotWAL, Server: o.server}
}

func (o *Options) buildOptions() status.BuildOptions {
	return status.BuildOptions{
		Options:           o.statusOptions(),
		Now:               o.Now,
		EngineFor:         o.EngineFor,
		Exec:              o.client.Exec,
		EngineTimeout:     o.EngineFlags.Timeout,
		ListEngineTimeout: o.ListEngineTimeout,
		Selector:          o.Selector,
	}
}

func (o *Options) list(ctx context.Context) error {
	ns := o.client.Namespace
	if o.AllNamespaces {
		ns = metav1.NamespaceAll
	}
	reports, err := status.BuildAll(ctx, o.client.Kube, ns, o.buildOptions())
	if err != nil {
		return err
	}
	switch {
	case !o.Output.Human():
		refs := make([]cmdutil.Ref, len(reports))
		for i, r := range reports {
			refs[i] = cmdutil.StatefulSetRef(r.StatefulSet.Namespace, r.StatefulSet.Name)
		}
		if err := o.Output.Print(o.Out, status.KindList, status.NewList(reports), refs...); err != nil {
			return err
		}
	default:
		if len(reports) == 0 {
			matching := ""
			if o.Selector != "" {
				matching = " matching " + o.Selector
			}
			if o.AllNamespaces {
				fmt.Fprintf(o.ErrOut, "No StatefulSets%s found.\n", matching)
			} else {
				fmt.Fprintf(o.ErrOut, "No StatefulSets%s found in namespace %s.\n", matching, ns)
			}
			return nil
		}
		opts := ui.StatusOptions{Wide: o.Output.Is(OutputWide), AllNamespaces: o.AllNamespaces, EnginesNotRead: o.Engine == "none"}
		if err := o.theme.RenderStatusList(o.Out, reports, opts); err != nil {
			return err
		}
	}
	for _, r := range reports {
		if !r.Verdict.Healthy {
			return cmdutil.WithExitCode(cmdutil.ExitDegraded, nil)
		}
	}
	return nil
}

func (o *Options) print(w io.Writer, r *status.Report) error {
	if !o.Output.Human() {
		return o.Output.Print(w, status.KindReport, r, cmdutil.StatefulSetRef(r.StatefulSet.Namespace, r.StatefulSet.Name))
	}
	return o.theme.RenderStatus(w, r, ui.StatusOptions{Wide: o.Output.Is(OutputWide), EngineStaleAfter: o.WatchRefresh})
}

// explainNotFound adds what a missing StatefulSet most likely means: the
// namespace does not exist, or the StatefulSet lives in another one. These
// look-ups are best effort and happen only on this error path.
func (o *Options) explainNotFound(ctx context.Context, err error) error {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &st) {
		return err
	}
	if d := st.Status().Details; d == nil || d.Kind != "statefulsets" {
		return err
	}
	ns := o.client.Namespace
	if _, nsErr := o.client.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(nsErr) {
		return fmt.Errorf("namespace %q does not exist, so StatefulSet %q is not there either (list namespaces with: kubectl get namespaces)", ns, o.Name)
	}
	if err := o.explainDeletedByExpansion(ctx, ns); err != nil {
		return err
	}
	others, listErr := o.client.Kube.AppsV1().StatefulSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", o.Name).String(),
	})
	if listErr != nil {
		return err
	}
	var where []string
	for _, s := range others.Items {
		if s.Name == o.Name && s.Namespace != ns {
			where = append(where, s.Namespace)
		}
	}
	if len(where) > 0 {
		return fmt.Errorf("StatefulSet %q not found in namespace %q, but it exists in namespace %s: add -n %s",
			o.Name, ns, strings.Join(quoteAll(where), ", "), where[0])
	}
	return err
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
