package util

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
)

func TestElsewhereNamesWhereTheStatefulSetIs(t *testing.T) {
	ns := func(n string) *corev1.Namespace { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}} }
	sts := func(n, name string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: name}}
	}
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db")
	client := fake.NewClientset(ns("a"), ns("b"), ns("c"), sts("b", "db"), sts("c", "db"), sts("a", "web"))
	ctx := context.Background()

	err := Elsewhere(ctx, client, "a", notFound)
	assert.EqualError(t, err, `statefulset "db" not found in namespace "a", but it exists in namespace "b", "c": add -n b`)

	err = Elsewhere(ctx, client, "gone", notFound)
	assert.EqualError(t, err, `statefulset "db" not found: namespace "gone" does not exist (list namespaces with: kubectl get namespaces, or pick another with -n)`)

	alone := fake.NewClientset(ns("a"))
	assert.Same(t, notFound, Elsewhere(ctx, alone, "a", notFound), "nowhere else: the error as it was")

	pod := apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "db-0")
	assert.Same(t, pod, Elsewhere(ctx, client, "a", pod), "only StatefulSets are looked for")
	other := errors.New("boom")
	assert.Same(t, other, Elsewhere(ctx, client, "a", other))
}
