package wait

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Soak returns a gate that passes once the named pods have stayed Ready for
// duration without restarting and without being replaced.
//
// The soak starts at the first check at which all pods are Ready (until then
// it is NotYet, so it can be combined with readiness gates in one wait). At
// that point it records each pod's UID, restart count (PodRestarts) and the
// lastTransitionTime of its Ready condition. It then fails at once if any pod
// disappears, gets a new UID, starts terminating, becomes unready, restarts,
// or has become unready and Ready again in between (the Ready condition's
// lastTransitionTime changed), so short flaps are caught even if the
// intermediate state was never observed.
//
// A Soak gate keeps this state, so use a new one for each wait.
func Soak(pods []string, duration time.Duration) Gate {
	return &soakGate{pods: append([]string(nil), pods...), duration: duration, now: time.Now}
}

type soakGate struct {
	pods     []string
	duration time.Duration
	now      func() time.Time

	started bool
	start   time.Time
	base    map[string]soakBaseline
}

type soakBaseline struct {
	uid        types.UID
	restarts   int32
	readySince metav1.Time
}

func (g *soakGate) Object() string {
	if len(g.pods) == 1 {
		return "pod " + g.pods[0]
	}
	return "pods " + strings.Join(g.pods, ", ")
}

func (g *soakGate) Name() string {
	return fmt.Sprintf("%s to stay Ready for %s", g.Object(), g.duration)
}

func (g *soakGate) NextCheck() time.Time {
	if !g.started {
		return time.Time{}
	}
	return g.start.Add(g.duration)
}

func (g *soakGate) Check(_ context.Context, s Snapshot) (Verdict, string, error) {
	if !g.started {
		for _, name := range g.pods {
			pod := s.Pod(name)
			if pod == nil || pod.DeletionTimestamp != nil || !IsPodReady(pod) {
				return NotYet, fmt.Sprintf("soak not started: pod %s: %s", name, podIs(pod)), nil
			}
		}
		g.base = make(map[string]soakBaseline, len(g.pods))
		for _, name := range g.pods {
			pod := s.Pod(name)
			b := soakBaseline{uid: pod.UID, restarts: PodRestarts(pod)}
			if c := podCondition(pod, corev1.PodReady); c != nil {
				b.readySince = c.LastTransitionTime
			}
			g.base[name] = b
		}
		g.started = true
		g.start = g.now()
	}

	for _, name := range g.pods {
		pod, b := s.Pod(name), g.base[name]
		switch {
		case pod == nil:
			return Fail, fmt.Sprintf("pod %s was deleted during the soak", name), nil
		case pod.UID != b.uid:
			return Fail, fmt.Sprintf("pod %s was replaced during the soak (uid %s -> %s)", name, b.uid, pod.UID), nil
		case pod.DeletionTimestamp != nil:
			return Fail, fmt.Sprintf("pod %s started terminating during the soak", name), nil
		case !IsPodReady(pod):
			return Fail, fmt.Sprintf("pod %s became unready during the soak: %s", name, podIs(pod)), nil
		}
		if r := PodRestarts(pod); r != b.restarts {
			return Fail, fmt.Sprintf("pod %s restarted during the soak (restarts %d -> %d)", name, b.restarts, r), nil
		}
		if c := podCondition(pod, corev1.PodReady); c != nil && !c.LastTransitionTime.Equal(&b.readySince) {
			return Fail, fmt.Sprintf("pod %s was briefly unready during the soak (Ready since %s)", name, c.LastTransitionTime.UTC().Format(time.RFC3339)), nil
		}
	}

	elapsed := g.now().Sub(g.start)
	if elapsed >= g.duration {
		return Pass, fmt.Sprintf("stable for %s", g.duration), nil
	}
	return NotYet, fmt.Sprintf("stable for %s of %s", roundDuration(elapsed), g.duration), nil
}

// roundDuration trims a duration for display.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
