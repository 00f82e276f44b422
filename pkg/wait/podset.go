package wait

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// PodsReadyAtRevision is PodReadyAtRevision over a set of pods in one gate:
// it passes when every pod passes, and otherwise reports the first pod (in
// the order given) that does not, naming it in its Name and Object. It keeps
// each pod's verdict and on a new snapshot looks only at the pods that
// changed, so a wait over many pods costs per event what one pod costs, and
// reports one line per change instead of one per pod. It keeps state: use
// a new one for each wait.
func PodsReadyAtRevision(pods []string, revision string) Gate {
	cond := "to be Ready"
	if revision != "" {
		cond += " at revision " + revision
	}
	return newPodSet(pods, cond, NotYet, func(pod *corev1.Pod) (Verdict, func() string) {
		return readyAtLazy(pod, revision)
	}, func(pod *corev1.Pod) (Verdict, string) { return readyAt(pod, revision) }, func(n int) string {
		if revision == "" {
			return fmt.Sprintf("all %d pods are Ready", n)
		}
		return fmt.Sprintf("all %d pods are Ready at revision %s", n, revision)
	})
}

// PodsNotFailing is PodNotFailing over a set of pods in one gate: it fails
// as soon as one pod fails, naming it, and passes otherwise. Like
// PodsReadyAtRevision it looks only at the pods that changed.
func PodsNotFailing(pods []string, revision string) Gate {
	cond := "not to be failing"
	if revision != "" {
		cond = "not to be failing at revision " + revision
	}
	return newPodSet(pods, cond, Fail, func(pod *corev1.Pod) (Verdict, func() string) {
		if pod == nil || pod.DeletionTimestamp != nil || (revision != "" && PodRevision(pod) != revision) {
			return Pass, nil
		}
		if podProblem(pod) == "" && pod.Status.Phase != corev1.PodFailed {
			return Pass, nil
		}
		v, reason := notFailing(pod, revision)
		return v, func() string { return reason }
	}, func(pod *corev1.Pod) (Verdict, string) { return notFailing(pod, revision) },
		func(n int) string { return fmt.Sprintf("none of %d pods is failing", n) })
}

// readyAtLazy is readyAt whose reason is built only when asked for.
func readyAtLazy(pod *corev1.Pod, revision string) (Verdict, func() string) {
	if pod != nil && pod.DeletionTimestamp == nil && (revision == "" || PodRevision(pod) == revision) && IsPodReady(pod) {
		return Pass, nil
	}
	v, reason := readyAt(pod, revision)
	return v, func() string { return reason }
}

// podSet is a PodGate over several pods that keeps each pod's verdict.
type podSet struct {
	pods []string
	cond string
	// bad is the verdict that counts against the set: NotYet for
	// readiness (the set waits), Fail for failing (the set fails).
	bad   Verdict
	check func(*corev1.Pod) (Verdict, func() string)
	// one is the check of a single pod, whose reason a set of one reports.
	one    func(*corev1.Pod) (Verdict, string)
	passed func(n int) string

	index map[string]int
	// notPassed holds the pods whose verdict is bad, with their reasons;
	// focus is the first of them, the one the gate names.
	notPassed map[int]func() string
	focus     int
	seq       uint64
	started   bool
}

func newPodSet(pods []string, cond string, bad Verdict, check func(*corev1.Pod) (Verdict, func() string),
	one func(*corev1.Pod) (Verdict, string), passed func(int) string) *podSet {
	g := &podSet{pods: append([]string(nil), pods...), cond: cond, bad: bad, check: check, one: one, passed: passed,
		index: make(map[string]int, len(pods)), notPassed: map[int]func() string{}, focus: -1}
	for i, p := range g.pods {
		g.index[p] = i
	}
	return g
}

func (g *podSet) Pods() []string { return g.pods }

func (g *podSet) Object() string {
	if g.focus >= 0 {
		return podObject(g.pods[g.focus])
	}
	return describePodSet(g.pods)
}

func (g *podSet) Name() string { return g.Object() + " " + g.cond }

func (g *podSet) Check(_ context.Context, s Snapshot) (Verdict, string, error) {
	changes, known := s.podChangesSince(g.seq)
	if !g.started || !known {
		clear(g.notPassed)
		for i, p := range g.pods {
			g.look(i, s.Pod(p))
		}
	} else {
		for _, c := range changes {
			if i, ok := g.index[c.name]; ok {
				g.look(i, s.Pod(c.name))
			}
		}
	}
	g.started, g.seq = true, s.Seq
	g.focus = -1
	for i := range g.notPassed {
		if g.focus < 0 || i < g.focus {
			g.focus = i
		}
	}
	if g.focus >= 0 {
		return g.bad, g.notPassed[g.focus](), nil
	}
	if len(g.pods) == 1 {
		_, reason := g.one(s.Pod(g.pods[0]))
		return Pass, reason, nil
	}
	return Pass, g.passed(len(g.pods)), nil
}

func (g *podSet) look(i int, pod *corev1.Pod) {
	v, reason := g.check(pod)
	if v == g.bad {
		g.notPassed[i] = reason
	} else {
		delete(g.notPassed, i)
	}
}

// describePodSet names a few pods: "pod db-0", "pods db-2, db-1, db-0",
// "pods db-9, db-8, db-7 and 7 more".
func describePodSet(pods []string) string {
	switch {
	case len(pods) == 1:
		return podObject(pods[0])
	case len(pods) <= 3:
		return "pods " + strings.Join(pods, ", ")
	default:
		return fmt.Sprintf("pods %s and %d more", strings.Join(pods[:3], ", "), len(pods)-3)
	}
}
