package plugins

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Defaults for a Target that leaves Parallel or Timeout zero.
const (
	DefaultParallel = 4
	DefaultTimeout  = 10 * time.Second
)

// podIndexLabel is set by the StatefulSet controller since Kubernetes 1.28.
const podIndexLabel = "apps.kubernetes.io/pod-index"

// Ordinal returns the pod's ordinal in its StatefulSet, or -1.
func Ordinal(sts *appsv1.StatefulSet, pod *corev1.Pod) int {
	if sts != nil {
		if n, ok := wait.PodOrdinal(sts.Name, pod.Name); ok {
			return n
		}
	}
	if v, ok := pod.Labels[podIndexLabel]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// PodName returns the name of the StatefulSet's pod of ordinal.
func (t Target) PodName(ordinal int) string {
	if t.StatefulSet == nil {
		return ""
	}
	return wait.PodName(t.StatefulSet.Name, ordinal)
}

// Namespace returns the namespace of the StatefulSet.
func (t Target) Namespace() string {
	if t.StatefulSet == nil {
		return ""
	}
	return t.StatefulSet.Namespace
}

// PodsExcept returns t's pods without the one of ordinal, sorted by ordinal.
func (t Target) PodsExcept(ordinal int) []*corev1.Pod {
	var pods []*corev1.Pod
	for _, p := range t.SortedPods() {
		if Ordinal(t.StatefulSet, p) != ordinal {
			pods = append(pods, p)
		}
	}
	return pods
}

// Pod returns t's pod of ordinal, or nil.
func (t Target) Pod(ordinal int) *corev1.Pod {
	for _, p := range t.Pods {
		if Ordinal(t.StatefulSet, p) == ordinal {
			return p
		}
	}
	return nil
}

// SortedPods returns t.Pods by ordinal (unknown ordinals last, by name).
func (t Target) SortedPods() []*corev1.Pod {
	pods := append([]*corev1.Pod(nil), t.Pods...)
	sort.SliceStable(pods, func(i, j int) bool {
		oi, oj := Ordinal(t.StatefulSet, pods[i]), Ordinal(t.StatefulSet, pods[j])
		if (oi < 0) != (oj < 0) {
			return oi >= 0
		}
		if oi != oj {
			return oi < oj
		}
		return pods[i].Name < pods[j].Name
	})
	return pods
}

// ContainerFor returns the container to run engine commands in: t.Container
// if set, else the first container whose image matches, else the first.
func (t Target) ContainerFor(pod *corev1.Pod, matches func(image string) bool) string {
	if t.Container != "" {
		return t.Container
	}
	for _, c := range pod.Spec.Containers {
		if matches(c.Image) {
			return c.Name
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return DefaultTimeout
}

func (t Target) parallel() int {
	if t.Parallel > 0 {
		return t.Parallel
	}
	return DefaultParallel
}

// CommandError is a command in a pod that ran and failed. Its message
// names the program, not the whole command line (which may hold a long
// script), and carries the start of standard error.
type CommandError struct {
	Pod      string
	Program  string
	ExitCode int
	Stderr   string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s in pod %s exited with code %d", e.Program, e.Pod, e.ExitCode)
	if s := firstLines(e.Stderr, 3, 400); s != "" {
		msg += ": " + s
	}
	return msg
}

// Run runs command in the pod's container with t's timeout and returns
// standard output. program names the command in errors. A non-zero exit
// is a *CommandError.
func (t Target) Run(ctx context.Context, pod *corev1.Pod, container, program string, command []string) ([]byte, error) {
	if t.Exec == nil {
		return nil, errors.New("no pod executor configured")
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	res, err := t.Exec.Exec(ctx, kube.ExecRequest{
		Namespace: pod.Namespace,
		Pod:       pod.Name,
		Container: container,
		Command:   command,
	})
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s in pod %s did not answer within %s", program, pod.Name, t.timeout())
		}
		return nil, fmt.Errorf("%s in pod %s: %w", program, pod.Name, err)
	}
	if res.ExitCode != 0 {
		return res.Stdout, &CommandError{Pod: pod.Name, Program: program, ExitCode: res.ExitCode, Stderr: string(res.Stderr)}
	}
	return res.Stdout, nil
}

// QueryFunc reads one pod's view. It fills Role, State, lag and details;
// QueryPods sets Pod and Ordinal.
type QueryFunc func(ctx context.Context, pod *corev1.Pod) (Member, error)

// QueryPods runs q for every pod of t, at most t.Parallel at a time and
// each within t.Timeout, and returns one Member per pod sorted by ordinal. A pod that is not running
// or whose query fails yields RoleUnknown with Error set; only the end of
// ctx itself is returned as an error.
func QueryPods(ctx context.Context, t Target, q QueryFunc) ([]Member, error) {
	pods := t.SortedPods()
	members := make([]Member, len(pods))
	sem := make(chan struct{}, t.parallel())
	var wg sync.WaitGroup
	for i, pod := range pods {
		base := Member{Pod: pod.Name, Ordinal: Ordinal(t.StatefulSet, pod), Role: RoleUnknown}
		if reason := notQueryable(pod); reason != "" {
			base.Error = reason
			members[i] = base
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				base.Error = ctx.Err().Error()
				members[i] = base
				return
			}
			defer func() { <-sem }()
			qctx, cancel := context.WithTimeout(ctx, t.timeout())
			defer cancel()
			m, err := q(qctx, pod)
			if err != nil {
				base.Error = err.Error()
				if ctx.Err() == nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
					base.Error = fmt.Sprintf("no answer within %s", t.timeout())
				}
				members[i] = base
				return
			}
			m.Pod, m.Ordinal = base.Pod, base.Ordinal
			if m.Role == "" {
				m.Role = RoleUnknown
			}
			members[i] = m
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return members, err
	}
	return members, nil
}

// notQueryable says why commands cannot run in pod now, or "".
func notQueryable(pod *corev1.Pod) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "pod is terminating"
	case pod.Status.Phase != corev1.PodRunning:
		phase := string(pod.Status.Phase)
		if phase == "" {
			phase = "not started"
		}
		return "pod is " + phase
	}
	return ""
}

// firstLines returns at most n non-empty lines of s, at most max bytes.
func firstLines(s string, n, max int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
		if len(out) == n {
			break
		}
	}
	joined := strings.Join(out, "; ")
	if len(joined) > max {
		joined = joined[:max] + "…"
	}
	return joined
}

// RunParsed returns a query for QueryViews that runs command, named
// program in errors, in the pod's engine container (ContainerFor with
// matches) and parses its output with parse; a parse error names the pod.
func RunParsed[V any](t Target, matches func(image string) bool, program string, command []string, parse func(out []byte) (V, error)) func(ctx context.Context, pod *corev1.Pod) (V, error) {
	return func(ctx context.Context, pod *corev1.Pod) (V, error) {
		var zero V
		out, err := t.Run(ctx, pod, t.ContainerFor(pod, matches), program, command)
		if err != nil {
			return zero, err
		}
		v, err := parse(out)
		if err != nil {
			return zero, fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		return v, nil
	}
}

// QueryViews asks every pod for the engine's own view of it, in parallel
// as QueryPods does, and returns the members (Role unset unless the pod
// did not answer) with each answering pod's view by pod name, for engines
// that decide roles only once every view is in.
func QueryViews[V any](ctx context.Context, t Target, query func(ctx context.Context, pod *corev1.Pod) (V, error)) ([]Member, map[string]V, error) {
	var mu sync.Mutex
	views := map[string]V{}
	members, err := QueryPods(ctx, t, func(ctx context.Context, pod *corev1.Pod) (Member, error) {
		v, err := query(ctx, pod)
		if err != nil {
			return Member{}, err
		}
		mu.Lock()
		views[pod.Name] = v
		mu.Unlock()
		return Member{}, nil
	})
	return members, views, err
}
