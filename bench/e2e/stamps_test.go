package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// stamp is one change seen on the watch, stamped with the local clock (the
// API's own timestamps are whole seconds).
type stamp struct {
	at      time.Time
	kind    string // stampReady, stampDeleted or stampPartition
	ordinal int    // the pod's ordinal, or the new partition
	rev     string // the pod's revision
}

const (
	stampReady     = "ready"     // a pod turned Ready
	stampDeleted   = "deleted"   // a pod was deleted (deletionTimestamp set, or gone)
	stampPartition = "partition" // the StatefulSet's partition changed
)

// stamper watches the pods and the StatefulSet of one benchmark.
type stamper struct {
	mu     sync.Mutex
	stamps []stamp
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// startStamper starts watching from the current state, so that only
// changes from now on are stamped.
func startStamper(t testing.TB, ns, name string) *stamper {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stamper{stop: cancel}
	t.Cleanup(s.close)
	pods := cluster.Client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	require.NoError(t, err)
	pw, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + name, ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	sets := cluster.Client.AppsV1().StatefulSets(ns)
	sts, err := sets.Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	sw, err := sets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: sts.ResourceVersion})
	require.NoError(t, err)

	ready := map[types.UID]bool{}
	deleted := map[types.UID]bool{}
	for i := range list.Items {
		p := &list.Items[i]
		ready[p.UID] = wait.IsPodReady(p)
		deleted[p.UID] = p.DeletionTimestamp != nil
	}
	s.done.Go(func() {
		defer pw.Stop()
		for ev := range pw.ResultChan() {
			now := time.Now()
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			ord, _ := wait.PodOrdinal(name, p.Name)
			if (ev.Type == watch.Deleted || p.DeletionTimestamp != nil) && !deleted[p.UID] {
				deleted[p.UID] = true
				s.add(stamp{at: now, kind: stampDeleted, ordinal: ord, rev: wait.PodRevision(p)})
			}
			if ev.Type != watch.Deleted && wait.IsPodReady(p) && !ready[p.UID] {
				ready[p.UID] = true
				s.add(stamp{at: now, kind: stampReady, ordinal: ord, rev: wait.PodRevision(p)})
			}
		}
	})
	last := rollout.Partition(sts)
	s.done.Go(func() {
		defer sw.Stop()
		for ev := range sw.ResultChan() {
			now := time.Now()
			o, ok := ev.Object.(*appsv1.StatefulSet)
			if !ok {
				continue
			}
			if p := rollout.Partition(o); p != last {
				last = p
				s.add(stamp{at: now, kind: stampPartition, ordinal: int(p)})
			}
		}
	})
	return s
}

func (s *stamper) add(st stamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stamps = append(s.stamps, st)
}

// close stops the watches; the stamps stay.
func (s *stamper) close() {
	s.stop()
	s.done.Wait()
}

func (s *stamper) all() []stamp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stamp(nil), s.stamps...)
}

// lastReady is when the last pod turned Ready on rev.
func (s *stamper) lastReady(rev string) time.Time {
	var out time.Time
	for _, st := range s.all() {
		if st.kind == stampReady && st.rev == rev && st.at.After(out) {
			out = st.at
		}
	}
	return out
}

// reactions returns, for each change of kind that followed a pod turning
// Ready on rev, the time from that Ready to the change: next(ordinal)
// names the ordinal whose Ready a change of the given ordinal follows.
// With kind stampPartition this is the rollout's reaction (Ready of pod
// p+1 → partition p); with stampDeleted the controller's (Ready of pod
// k+1 → delete of pod k).
func reactions(stamps []stamp, rev, kind string) []time.Duration {
	readyAt := map[int]time.Time{}
	var out []time.Duration
	for _, st := range stamps {
		switch {
		case st.kind == stampReady && st.rev == rev:
			readyAt[st.ordinal] = st.at
		case st.kind == kind && (kind == stampPartition || st.rev != rev):
			if r, ok := readyAt[st.ordinal+1]; ok {
				out = append(out, st.at.Sub(r))
				delete(readyAt, st.ordinal+1)
			}
		}
	}
	return out
}
