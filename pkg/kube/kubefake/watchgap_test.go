package kubefake

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
)

// An informer lists, a pod is deleted, then the informer's watch starts
// from the List's resourceVersion: the watch must begin with that delete,
// as the API server's does, or the informer keeps the pod for ever.
func TestAWatchFromAListSeesTheDeletesAfterIt(t *testing.T) {
	ctx := context.Background()
	pod := func(name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
	}
	cs := fake.NewClientset(pod("db-0", "a"), pod("db-1", "b"))
	NewController(cs, "ns")
	require.NoError(t, cs.CoreV1().Pods("ns").Delete(ctx, "db-0", metav1.DeleteOptions{}))
	list, err := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	require.NoError(t, cs.CoreV1().Pods("ns").Delete(ctx, "db-1", metav1.DeleteOptions{}))
	_, err = cs.CoreV1().Pods("ns").Create(ctx, pod("db-1", "c"), metav1.CreateOptions{})
	require.NoError(t, err)

	w, err := cs.CoreV1().Pods("ns").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	defer w.Stop()
	var got []string
	for len(got) < 2 {
		select {
		case e := <-w.ResultChan():
			got = append(got, string(e.Type)+" "+e.Object.(*corev1.Pod).Name)
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far: %v", got)
		}
	}
	// db-0 went before the List: not replayed. db-1 went after it and came
	// back: its delete, then its new incarnation.
	assert.Equal(t, []string{string(watch.Deleted) + " db-1", string(watch.Added) + " db-1"}, got)
}
