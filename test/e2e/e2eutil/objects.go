package e2eutil

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Settled reports whether every replica of s (spec.replicas) runs Ready on
// one revision, as its controller last observed: the observed generation
// caught up, and the status counts of replicas, Ready and updated pods all
// equal spec.replicas with the current revision the update revision.
func Settled(s *appsv1.StatefulSet) bool {
	r := int32(1)
	if s.Spec.Replicas != nil {
		r = *s.Spec.Replicas
	}
	st := s.Status
	return st.ObservedGeneration == s.Generation && st.Replicas == r && st.ReadyReplicas == r &&
		st.UpdatedReplicas == r && st.CurrentRevision == st.UpdateRevision
}

// WaitSettled waits with p until the StatefulSet ns/name is Settled and
// returns it. A test that fails afterwards logs the state last seen.
func (p Poll) WaitSettled(t testing.TB, c kubernetes.Interface, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	var out *appsv1.StatefulSet
	t.Cleanup(func() {
		if t.Failed() && out != nil {
			t.Logf("statefulset %s last seen: generation %d, replicas %d, status %+v", name, out.Generation, ptrValue(out.Spec.Replicas), out.Status)
		}
	})
	p.Until(t, "statefulset "+name+" settled", func(ctx context.Context) (bool, error) {
		s, err := c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		out = s
		return Settled(s), nil
	})
	return out
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// Pods returns the pods of namespace ns that match selector (kubectl's -l
// syntax; empty for all), by name.
func Pods(t testing.TB, c kubernetes.Interface, ns, selector string) map[string]*corev1.Pod {
	t.Helper()
	list, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	out := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// PodUIDs returns the UIDs of the pods Pods returns, by name: what tells a
// pod from the one the StatefulSet controller recreates under its name.
func PodUIDs(t testing.TB, c kubernetes.Interface, ns, selector string) map[string]types.UID {
	t.Helper()
	out := map[string]types.UID{}
	for name, p := range Pods(t, c, ns, selector) {
		out[name] = p.UID
	}
	return out
}

// Claims returns the PersistentVolumeClaims of namespace ns, by name.
func Claims(t testing.TB, c kubernetes.Interface, ns string) map[string]*corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := c.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	out := make(map[string]*corev1.PersistentVolumeClaim, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// ClaimNames returns the sorted names of the claims of namespace ns that
// are not being deleted.
func ClaimNames(t testing.TB, c kubernetes.Interface, ns string) []string {
	t.Helper()
	var out []string
	for name, pvc := range Claims(t, c, ns) {
		if pvc.DeletionTimestamp == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
