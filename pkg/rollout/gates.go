package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Annotations on the StatefulSet through which other processes steer a
// running rollout: the running process watches its StatefulSet anyway,
// so a resume or abort from another terminal reaches it at once.
const (
	// AnnotationAbort holds the ID of a rollout asked to stop.
	AnnotationAbort = "kubectl-sts.io/rollout-abort"
	// AnnotationResume holds "<ID>/<step>": the pause after that step is
	// approved.
	AnnotationResume = "kubectl-sts.io/rollout-resume"
)

// GateCommandTimeout bounds one run of a --gate-exec or --gate-cmd
// command; a command that does not answer in time counts as not passed.
const GateCommandTimeout = time.Minute

// CommandResult is the outcome of a local gate command.
type CommandResult struct {
	ExitCode int
	Output   []byte
}

// CommandRunner runs --gate-cmd commands on this machine.
type CommandRunner interface {
	Run(ctx context.Context, command string, env []string) (CommandResult, error)
}

// ShellRunner runs commands with sh -c, with env added to this process's
// environment.
type ShellRunner struct{}

// Run implements CommandRunner.
func (ShellRunner) Run(ctx context.Context, command string, env []string) (CommandResult, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return CommandResult{ExitCode: exitErr.ExitCode(), Output: out.Bytes()}, nil
	}
	if err != nil {
		return CommandResult{Output: out.Bytes()}, err
	}
	return CommandResult{Output: out.Bytes()}, nil
}

// podsReady follows whether every pod of a set is Ready at a revision,
// looking at only the pods changed since its last check.
type podsReady struct{ g wait.Gate }

func newPodsReady(pods []string, revision string) *podsReady {
	return &podsReady{g: wait.PodsReadyAtRevision(pods, revision)}
}

// check reports whether every pod is Ready at the revision; reason names
// the first that is not.
func (r *podsReady) check(ctx context.Context, s wait.Snapshot) (bool, string) {
	v, reason, _ := r.g.Check(ctx, s)
	if v == wait.Pass {
		return true, ""
	}
	return false, fmt.Sprintf("waiting for %s (%s)", r.g.Name(), reason)
}

// commandGate runs a check once per pod (or once for all pods) after they
// are Ready at the revision, and passes once it has exited 0. A failing
// check is retried every interval until the step's timeout: a replica
// that is catching up should get its chance.
type commandGate struct {
	object, name string
	pods         []string
	ready        *podsReady
	interval     time.Duration
	perPod       bool
	run          func(ctx context.Context, pod string) (int, string, error)

	passed  map[string]types.UID
	last    time.Time
	verdict wait.Verdict
	reason  string
}

func (g *commandGate) Name() string   { return g.object + " " + g.name }
func (g *commandGate) Object() string { return g.object }

func (g *commandGate) NextCheck() time.Time {
	if g.last.IsZero() || g.verdict == wait.Pass {
		return time.Time{}
	}
	return g.last.Add(g.interval)
}

func (g *commandGate) Check(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
	if ok, why := g.ready.check(ctx, s); !ok {
		return wait.NotYet, why, nil
	}
	targets := []string{""}
	if g.perPod {
		targets = g.pods
	}
	uidOf := func(target string) types.UID {
		if target == "" {
			return "all"
		}
		if p := s.Pod(target); p != nil {
			return p.UID
		}
		return ""
	}
	pending := 0
	for _, t := range targets {
		if uid, ok := g.passed[t]; !ok || uid != uidOf(t) {
			pending++
		}
	}
	if pending == 0 {
		g.verdict, g.reason = wait.Pass, "passed"
		return g.verdict, g.reason, nil
	}
	if !g.last.IsZero() && time.Since(g.last) < g.interval {
		return g.verdict, g.reason, nil
	}
	g.last = time.Now()
	var failures []string
	for _, t := range targets {
		if uid, ok := g.passed[t]; ok && uid == uidOf(t) {
			continue
		}
		code, out, err := g.run(ctx, t)
		label := "command"
		if t != "" {
			label = "pod " + t
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return wait.NotYet, "", ctx.Err()
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", label, err))
		case code != 0:
			msg := fmt.Sprintf("%s: exit code %d", label, code)
			if out = firstLine(out); out != "" {
				msg += ": " + out
			}
			failures = append(failures, msg)
		default:
			g.passed[t] = uidOf(t)
		}
	}
	if len(failures) == 0 {
		g.verdict, g.reason = wait.Pass, "passed"
	} else {
		g.verdict, g.reason = wait.NotYet, strings.Join(failures, "; ")
	}
	return g.verdict, g.reason, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// ExecGate runs command with sh -c in the container of each pod once the
// pod is Ready at revision, through the shared executor; exit 0 passes.
func ExecGate(ex kube.Executor, namespace string, pods []string, container, command, revision string, interval time.Duration) wait.Gate {
	object := "pods " + strings.Join(pods, ", ")
	if len(pods) == 1 {
		object = "pod " + pods[0]
	}
	return &commandGate{
		object: object, name: fmt.Sprintf("to pass %q", command),
		pods: pods, ready: newPodsReady(pods, revision), interval: interval, perPod: true,
		passed: map[string]types.UID{},
		run: func(ctx context.Context, pod string) (int, string, error) {
			ctx, cancel := context.WithTimeout(ctx, GateCommandTimeout)
			defer cancel()
			res, err := ex.Exec(ctx, kube.ExecRequest{Namespace: namespace, Pod: pod, Container: container, Command: []string{"sh", "-c", command}})
			if err != nil {
				return 0, "", err
			}
			out := string(res.Stderr)
			if strings.TrimSpace(out) == "" {
				out = string(res.Stdout)
			}
			return res.ExitCode, out, nil
		},
	}
}

// CommandEnv is the environment a --gate-cmd command runs with.
type CommandEnv struct {
	Namespace, StatefulSet, Revision string
	Step, Steps                      int
	Partition                        int32
	// Pods are the pods the step moved; Updated all pods on the revision.
	Pods, Updated []string
}

// Environ renders the environment variables.
func (e CommandEnv) Environ() []string {
	return []string{
		"KUBECTL_STS_NAMESPACE=" + e.Namespace,
		"KUBECTL_STS_STATEFULSET=" + e.StatefulSet,
		"KUBECTL_STS_REVISION=" + e.Revision,
		fmt.Sprintf("KUBECTL_STS_STEP=%d", e.Step),
		fmt.Sprintf("KUBECTL_STS_STEPS=%d", e.Steps),
		fmt.Sprintf("KUBECTL_STS_PARTITION=%d", e.Partition),
		"KUBECTL_STS_PODS=" + strings.Join(e.Pods, " "),
		"KUBECTL_STS_UPDATED_PODS=" + strings.Join(e.Updated, " "),
	}
}

// LocalCommandGate runs command on this machine once the updated pods are
// Ready at the revision; exit 0 passes.
func LocalCommandGate(r CommandRunner, command string, env CommandEnv, interval time.Duration) wait.Gate {
	return &commandGate{
		object: "statefulset " + env.StatefulSet, name: fmt.Sprintf("local check %q to pass", command),
		pods: env.Updated, ready: newPodsReady(env.Updated, env.Revision), interval: interval,
		passed: map[string]types.UID{},
		run: func(ctx context.Context, _ string) (int, string, error) {
			ctx, cancel := context.WithTimeout(ctx, GateCommandTimeout)
			defer cancel()
			res, err := r.Run(ctx, command, env.Environ())
			if err != nil {
				return 0, "", err
			}
			return res.ExitCode, string(res.Output), nil
		},
	}
}

// EngineGate asks the database engine whether the replica set is healthy
// (lag within bounds), once the updated pods are Ready at the revision.
func EngineGate(e plugins.Engine, t plugins.Target, opts plugins.HealthOptions, pods []string, revision string, interval time.Duration) wait.Gate {
	return &readyFirst{Gate: plugins.HealthGate(e, t, opts, interval), ready: newPodsReady(pods, revision)}
}

// readyFirst holds a gate back until the pods are Ready at the revision,
// so databases are not asked about pods that are still starting.
type readyFirst struct {
	wait.Gate
	ready *podsReady
}

func (g *readyFirst) Object() string {
	if og, ok := g.Gate.(wait.ObjectGate); ok {
		return og.Object()
	}
	return ""
}

func (g *readyFirst) NextCheck() time.Time {
	if tg, ok := g.Gate.(wait.TimedGate); ok {
		return tg.NextCheck()
	}
	return time.Time{}
}

func (g *readyFirst) Check(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
	if ok, why := g.ready.check(ctx, s); !ok {
		return wait.NotYet, why, nil
	}
	return g.Gate.Check(ctx, s)
}

// abortGate fails as soon as the rollout with id is asked to stop.
func abortGate(name, id string) wait.Gate {
	return wait.NewGate("statefulset "+name, "not to be aborted", func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if abortRequested(s.StatefulSet, id) {
			return wait.Fail, "abort requested (kubectl sts rollout abort)", nil
		}
		return wait.Pass, "no abort requested", nil
	})
}

func abortRequested(sts *appsv1.StatefulSet, id string) bool {
	return sts != nil && id != "" && sts.Annotations[AnnotationAbort] == id
}

// resumeValue is the AnnotationResume value approving the pause after step.
func resumeValue(id string, step int) string { return fmt.Sprintf("%s/%d", id, step) }

// approvedGate passes when the pause after step is approved.
func approvedGate(name, id string, step int) wait.Gate {
	want := resumeValue(id, step)
	return wait.NewGate("statefulset "+name, fmt.Sprintf("to be resumed after step %d", step), func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if s.StatefulSet != nil && s.StatefulSet.Annotations[AnnotationResume] == want {
			return wait.Pass, "resumed", nil
		}
		return wait.NotYet, "paused", nil
	})
}

// completeGate passes when the controller has finished rolling out
// revision: observed, every replica Ready and current at it.
func completeGate(name, revision string) wait.Gate {
	var ready *podsReady
	var readyOf []string
	return wait.NewGate("statefulset "+name, "to finish rolling out revision "+revision, func(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		sts := s.StatefulSet
		if sts == nil {
			return wait.NotYet, "statefulset does not exist", nil
		}
		st := sts.Status
		want := Replicas(sts)
		switch {
		case st.ObservedGeneration < sts.Generation:
			return wait.NotYet, fmt.Sprintf("observedGeneration %d < generation %d", st.ObservedGeneration, sts.Generation), nil
		case st.UpdateRevision != revision:
			return wait.NotYet, fmt.Sprintf("update revision is %s", st.UpdateRevision), nil
		}
		if pods := UpdatedPods(sts.Name, want, OrdinalsStart(sts), 0); ready == nil || !slices.Equal(pods, readyOf) {
			ready, readyOf = newPodsReady(pods, revision), pods
		}
		if ok, why := ready.check(ctx, s); !ok {
			return wait.NotYet, why, nil
		}
		if st.CurrentRevision != revision || st.UpdatedReplicas != want || st.ReadyReplicas != want {
			return wait.NotYet, fmt.Sprintf("controller reports current revision %s, %d/%d updated, %d ready", st.CurrentRevision, st.UpdatedReplicas, want, st.ReadyReplicas), nil
		}
		return wait.Pass, fmt.Sprintf("all %d pods Ready at revision %s", want, revision), nil
	})
}

// stuckPods returns the pods that are not on revision, not terminating
// and not Ready: the controller will not replace them on its own.
func stuckPods(s wait.Snapshot, revision string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range s.OrderedPods() {
		if wait.PodRevision(p) != revision && p.DeletionTimestamp == nil && !wait.IsPodReady(p) {
			out = append(out, p)
		}
	}
	return out
}

// stuckGate passes when a pod off revision is stuck and was not already
// deleted by the rollback (deleted holds UIDs).
func stuckGate(name, revision string, deleted map[types.UID]bool) wait.Gate {
	return wait.NewGate("statefulset "+name, "to have a pod stuck off revision "+revision, func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		for _, p := range stuckPods(s, revision) {
			if !deleted[p.UID] {
				return wait.Pass, fmt.Sprintf("pod %s is stuck at revision %s (%s)", p.Name, wait.PodRevision(p), wait.DescribePodState(p)), nil
			}
		}
		return wait.NotYet, "no stuck pod", nil
	})
}
