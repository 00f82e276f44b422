package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Objects are what a report is built from: a StatefulSet, its pods and
// its claims.
type Objects = wait.Objects

// Fetch reads one StatefulSet with three requests whatever its replica
// count (see wait.Read): GET the StatefulSet, LIST its pods by its
// selector, LIST the namespace's claims (a claim belongs to the
// StatefulSet by its name, see wait.OwnsClaim).
func Fetch(ctx context.Context, c kubernetes.Interface, namespace, name string) (*Objects, error) {
	return wait.Read(ctx, c, namespace, name)
}

// FetchAll reads every StatefulSet in namespace ("" means all namespaces)
// with three LIST requests (see wait.ReadAll), sorted by namespace and
// name. selector (kubectl's -l syntax, empty for all) filters the
// StatefulSets by their own labels.
func FetchAll(ctx context.Context, c kubernetes.Interface, namespace, selector string) ([]*Objects, error) {
	return wait.ReadAll(ctx, c, namespace, selector)
}

// BuildOptions configure Build.
type BuildOptions struct {
	Options
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// EngineFor picks the database engine of a StatefulSet. Nil, or a nil
	// engine returned, means no engine: the report has no members.
	EngineFor func(sts *appsv1.StatefulSet) (plugins.Engine, error)
	// Exec runs the engine's commands in pods.
	Exec kube.Executor
	// Container, Parallel and EngineTimeout are passed to the engine in
	// its plugins.Target.
	Container     string
	Parallel      int
	EngineTimeout time.Duration
	// Selector filters BuildAll's StatefulSets by label (kubectl's -l).
	Selector string
	// ListParallel bounds how many StatefulSets BuildAll asks engines of
	// at once (DefaultListParallel if zero); ListEngineTimeout bounds each
	// StatefulSet's engine (DefaultListEngineTimeout if zero).
	ListParallel      int
	ListEngineTimeout time.Duration
}

// Defaults of BuildOptions.ListParallel and ListEngineTimeout.
const (
	DefaultListParallel      = 4
	DefaultListEngineTimeout = 15 * time.Second
)

func (o BuildOptions) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Build reads one StatefulSet (see Fetch), asks its engine when there is
// one, and returns the report.
func Build(ctx context.Context, c kubernetes.Interface, namespace, name string, opts BuildOptions) (*Report, error) {
	objs, err := Fetch(ctx, c, namespace, name)
	if err != nil {
		return nil, err
	}
	r := Summarize(objs.StatefulSet, objs.Pods, objs.PVCs, opts.now(), opts.Options)
	if opts.EngineFor == nil {
		return r, nil
	}
	e, err := opts.EngineFor(objs.StatefulSet)
	if err != nil {
		return nil, err
	}
	if e != nil {
		AddMembers(ctx, r, e, opts.Target(objs.StatefulSet, objs.Pods), opts.Options)
	}
	return r, nil
}

// Target is what the engine of sts is given: its own pods among pods and
// how to run commands in them.
func (o BuildOptions) Target(sts *appsv1.StatefulSet, pods []*corev1.Pod) plugins.Target {
	return plugins.Target{
		StatefulSet: sts,
		Pods:        wait.FilterPods(sts, pods),
		Exec:        o.Exec,
		Container:   o.Container,
		Parallel:    o.Parallel,
		Timeout:     o.EngineTimeout,
	}
}

// BuildAll reads every StatefulSet in namespace ("" means all) with three
// requests (see FetchAll) and returns their reports. With EngineFor set it
// asks each StatefulSet's engine, ListParallel at a time, each bounded by
// ListEngineTimeout: an engine that does not answer in time is recorded as
// unavailable, never a reason to fail the list.
func BuildAll(ctx context.Context, c kubernetes.Interface, namespace string, opts BuildOptions) ([]*Report, error) {
	all, err := FetchAll(ctx, c, namespace, opts.Selector)
	if err != nil {
		return nil, err
	}
	now := opts.now()
	reports := make([]*Report, 0, len(all))
	for _, o := range all {
		reports = append(reports, Summarize(o.StatefulSet, o.Pods, o.PVCs, now, opts.Options))
	}
	if opts.EngineFor == nil {
		return reports, nil
	}
	parallel, timeout := opts.ListParallel, opts.ListEngineTimeout
	if parallel <= 0 {
		parallel = DefaultListParallel
	}
	if timeout <= 0 {
		timeout = DefaultListEngineTimeout
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, o := range all {
		e, err := opts.EngineFor(o.StatefulSet)
		if err != nil {
			SetMembers(reports[i], EngineStatus{Name: "unknown", Error: err.Error(), ReadAt: now}, nil, opts.Options)
			continue
		}
		if e == nil {
			continue
		}
		wg.Add(1)
		go func(r *Report, o *Objects) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			ectx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			AddMembers(ectx, r, e, opts.Target(o.StatefulSet, o.Pods), opts.Options)
			if r.Engine != nil && r.Engine.Error != "" && ectx.Err() != nil && ctx.Err() == nil {
				r.Engine.Error = fmt.Sprintf("no answer within %s: %s", timeout, r.Engine.Error)
				r.Verdict = Judge(r, opts.Options)
			}
		}(reports[i], o)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return reports, nil
}

// AddMembers asks engine e for its members and records them in r with
// SetMembers. A failing engine is recorded in r.Engine.Error, not returned.
func AddMembers(ctx context.Context, r *Report, e plugins.Engine, t plugins.Target, opts Options) {
	es := EngineStatus{Name: e.Name(), ReadAt: r.ObservedAt}
	members, err := e.Members(ctx, t)
	if err != nil {
		es.Error = err.Error()
		members = nil
	} else {
		es.Healthy, es.Reason = e.Healthy(members, opts.MaxLag)
		es.Traps = Traps(r, e, members, opts)
	}
	SetMembers(r, es, members, opts)
}

// Traps are the known dangers engine e names in members (when it names
// any) and the replicas over the lag bound of opts.
func Traps(r *Report, e plugins.Engine, members []plugins.Member, opts Options) []plugins.Trap {
	var out []plugins.Trap
	if tf, ok := e.(plugins.TrapFinder); ok {
		out = tf.Traps(members, plugins.TrapOptions{
			StatefulSet: r.StatefulSet.Name, Namespace: r.StatefulSet.Namespace,
			OrdinalsStart: int(r.StatefulSet.OrdinalsStart), Replicas: int(r.StatefulSet.Replicas.Desired),
			SlotRetainedBytes: opts.SlotRetainedBytes,
		})
	}
	return append(out, plugins.LagTraps(members, opts.MaxLag)...)
}

// SetMembers records an engine's outcome and members in r, attaches each
// member to its ordinal and recomputes the verdict.
func SetMembers(r *Report, es EngineStatus, members []plugins.Member, opts Options) {
	r.Members = append([]plugins.Member(nil), members...)
	byPod := make(map[string]int, len(r.Members))
	for i, m := range r.Members {
		byPod[m.Pod] = i
	}
	for i := range r.Ordinals {
		r.Ordinals[i].Member = nil
		if k, ok := byPod[r.Ordinals[i].PodName]; ok {
			r.Ordinals[i].Member = &r.Members[k]
		}
	}
	r.Engine = &es
	r.Verdict = Judge(r, opts)
}
