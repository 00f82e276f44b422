package e2eutil

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// Colleague is the field manager of the changes ChangeAt makes: someone
// else editing the StatefulSet while a workflow runs.
const Colleague = "colleague"

// ColleaguePatch is a merge patch that changes the pod template (the
// annotation colleague: was-here) and sets the partition to partition;
// with the partition above every ordinal the controller rolls nothing out,
// so any pod that goes afterwards went by the command.
func ColleaguePatch(partition int32) []byte {
	return []byte(fmt.Sprintf(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":%d}},"template":{"metadata":{"annotations":{"colleague":"was-here"}}}}}`, partition))
}

// ChangeAt returns an onEvent for RunWatching that patches StatefulSet
// name in ns of c as Colleague, with patch of type pt, at the first
// progress event at accepts, and never again. The workflow waits while the
// patch is sent.
func ChangeAt(t testing.TB, c *testbed.Cluster, ns, name string, pt types.PatchType, patch []byte, at func(progress.Event) bool) func(progress.Event) {
	var once sync.Once
	return func(ev progress.Event) {
		if !at(ev) {
			return
		}
		once.Do(func() {
			_, err := c.Client.AppsV1().StatefulSets(ns).Patch(context.Background(), name, pt, patch, metav1.PatchOptions{FieldManager: Colleague})
			require.NoError(t, err)
		})
	}
}
