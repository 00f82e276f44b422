package kube_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

func budgetRefusal() error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget db needs 2 healthy pods and has 2 currently"}}
	return err
}

func evictionFixture(refusals int) (*fake.Clientset, *int) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "db"}}}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	other := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	c := fake.NewClientset(pod, pdb, other)
	attempts := 0
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		attempts++
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if ev.DeleteOptions == nil || ev.DeleteOptions.Preconditions == nil || *ev.DeleteOptions.Preconditions.UID != "u1" {
			return true, nil, errors.New("eviction without the UID precondition")
		}
		if attempts <= refusals {
			return true, nil, budgetRefusal()
		}
		return true, nil, nil
	})
	return c, &attempts
}

func TestEvictWaitsWhileABudgetRefusesThenEvicts(t *testing.T) {
	c, attempts := evictionFixture(3)
	var blocked []string
	e := kube.Evictor{Client: c, Retry: time.Millisecond, Blocked: func(budgets []string, msg string) {
		blocked = append(blocked, budgets[0]+": "+msg)
	}}
	require.NoError(t, e.Evict(context.Background(), "ns", "db-1", "u1"))
	assert.Equal(t, 4, *attempts)
	assert.Equal(t, []string{"db: The disruption budget db needs 2 healthy pods and has 2 currently"}, blocked, "told once per distinct refusal")
}

func TestEvictGivesUpWhenTheTimeRunsOut(t *testing.T) {
	c, _ := evictionFixture(1 << 30)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := kube.Evictor{Client: c, Retry: 5 * time.Millisecond}.Evict(ctx, "ns", "db-1", "u1")
	var blocked *kube.EvictionBlockedError
	require.ErrorAs(t, err, &blocked)
	assert.Equal(t, []string{"db"}, blocked.Budgets)
	assert.Equal(t, "pod db-1 was not evicted: PodDisruptionBudget db refused it until the time ran out (The disruption budget db needs 2 healthy pods and has 2 currently)", err.Error())
	_, gerr := c.CoreV1().Pods("ns").Get(context.Background(), "db-1", metav1.GetOptions{})
	assert.NoError(t, gerr, "the pod is untouched")
}

func TestEvictOfAPodAlreadyGoneIsDone(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(corev1.Resource("pods"), "db-1")
	})
	assert.NoError(t, kube.Evictor{Client: c}.Evict(context.Background(), "ns", "db-1", "u1"))
}
