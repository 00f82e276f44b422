package scaledown

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func newFakeDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		SnapshotResource():      "VolumeSnapshotList",
		SnapshotClassResource(): "VolumeSnapshotClassList",
	}, objs...)
}

func snapshotClass(name string, isDefault bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(SnapshotGroup + "/" + SnapshotVersion)
	u.SetKind("VolumeSnapshotClass")
	u.SetName(name)
	if isDefault {
		u.SetAnnotations(map[string]string{annotationDefaultSnapshotClass: "true"})
	}
	u.Object["driver"] = "csi.example.com"
	return u
}

// withSnapshotAPI makes the fake discovery serve the VolumeSnapshot API.
func withSnapshotAPI(c *fake.Clientset) {
	c.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
		GroupVersion: SnapshotGroup + "/" + SnapshotVersion,
		APIResources: []metav1.APIResource{{Name: "volumesnapshots", Namespaced: true, Kind: "VolumeSnapshot"}, {Name: "volumesnapshotclasses", Kind: "VolumeSnapshotClass"}},
	}}
}

func TestCheckSnapshotAPI(t *testing.T) {
	ctx := context.Background()
	t.Run("API not installed", func(t *testing.T) {
		_, err := checkSnapshotAPI(ctx, fake.NewClientset().Discovery(), newFakeDynamic(), "")
		var missing *SnapshotAPIMissingError
		require.ErrorAs(t, err, &missing)
		assert.Contains(t, err.Error(), "install the external-snapshotter")
	})
	t.Run("named class", func(t *testing.T) {
		c := fake.NewClientset()
		withSnapshotAPI(c)
		got, err := checkSnapshotAPI(ctx, c.Discovery(), newFakeDynamic(snapshotClass("fast", false)), "fast")
		require.NoError(t, err)
		assert.Equal(t, "fast", got)
	})
	t.Run("named class missing", func(t *testing.T) {
		c := fake.NewClientset()
		withSnapshotAPI(c)
		_, err := checkSnapshotAPI(ctx, c.Discovery(), newFakeDynamic(snapshotClass("fast", false)), "slow")
		var invalid *InvalidError
		require.ErrorAs(t, err, &invalid)
		assert.Contains(t, err.Error(), `VolumeSnapshotClass "slow" does not exist`)
	})
	t.Run("default class", func(t *testing.T) {
		c := fake.NewClientset()
		withSnapshotAPI(c)
		got, err := checkSnapshotAPI(ctx, c.Discovery(), newFakeDynamic(snapshotClass("fast", false), snapshotClass("std", true)), "")
		require.NoError(t, err)
		assert.Equal(t, "std", got)
	})
	t.Run("no default class", func(t *testing.T) {
		c := fake.NewClientset()
		withSnapshotAPI(c)
		_, err := checkSnapshotAPI(ctx, c.Discovery(), newFakeDynamic(snapshotClass("fast", false)), "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no default VolumeSnapshotClass")
	})
}

func TestSnapshotName(t *testing.T) {
	started := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	assert.Equal(t, "data-db-4-20260304-050607", SnapshotName("data-db-4", started))
	long := SnapshotName(string(make([]byte, 300)), started)
	assert.Len(t, long, 253)
}

// markReady plays the snapshot controller: it sets status.readyToUse (or
// an error) on the snapshot once it exists.
func markReady(t *testing.T, dyn *dynamicfake.FakeDynamicClient, name string, failMsg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	go func() {
		defer cancel()
		api := dyn.Resource(SnapshotResource()).Namespace(ns)
		for ctx.Err() == nil {
			u, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			// A first status that is not ready yet, as a real controller writes.
			_ = unstructured.SetNestedField(u.Object, false, "status", "readyToUse")
			if u, err = api.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				continue
			}
			time.Sleep(20 * time.Millisecond)
			if failMsg != "" {
				_ = unstructured.SetNestedField(u.Object, failMsg, "status", "error", "message")
			} else {
				_ = unstructured.SetNestedField(u.Object, true, "status", "readyToUse")
			}
			if _, err := api.Update(ctx, u, metav1.UpdateOptions{}); err == nil {
				return
			}
		}
	}()
}

func TestSnapshotterCreatesAndWaitsForReadyToUse(t *testing.T) {
	ctx := context.Background()
	dyn := newFakeDynamic()
	s := snapshotter{dyn: dyn, namespace: ns, sts: "db", class: "std"}
	created, err := s.ensure(ctx, "data-db-4-x", "data-db-4")
	require.NoError(t, err)
	assert.True(t, created)

	got, err := dyn.Resource(SnapshotResource()).Namespace(ns).Get(ctx, "data-db-4-x", metav1.GetOptions{})
	require.NoError(t, err)
	src, _, _ := unstructured.NestedString(got.Object, "spec", "source", "persistentVolumeClaimName")
	class, _, _ := unstructured.NestedString(got.Object, "spec", "volumeSnapshotClassName")
	assert.Equal(t, "data-db-4", src)
	assert.Equal(t, "std", class)

	// A second call (a resumed run) reuses it.
	created, err = s.ensure(ctx, "data-db-4-x", "data-db-4")
	require.NoError(t, err)
	assert.False(t, created)

	markReady(t, dyn, "data-db-4-x", "")
	require.NoError(t, s.waitReady(ctx, "data-db-4-x", safety))
}

func TestSnapshotterRefusesASnapshotOfSomethingElse(t *testing.T) {
	ctx := context.Background()
	dyn := newFakeDynamic()
	s := snapshotter{dyn: dyn, namespace: ns, sts: "db", class: "std"}
	_, err := s.ensure(ctx, "snap", "data-db-3")
	require.NoError(t, err)
	_, err = s.ensure(ctx, "snap", "data-db-4")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a snapshot of pvc data-db-4")
}

func TestSnapshotterReportsAFailedSnapshot(t *testing.T) {
	ctx := context.Background()
	dyn := newFakeDynamic()
	s := snapshotter{dyn: dyn, namespace: ns, sts: "db", class: "std"}
	_, err := s.ensure(ctx, "snap", "data-db-4")
	require.NoError(t, err)
	markReady(t, dyn, "snap", "driver refused: quota exceeded")
	err = s.waitReady(ctx, "snap", safety)
	var failed *SnapshotFailedError
	require.ErrorAs(t, err, &failed)
	assert.Contains(t, err.Error(), "quota exceeded")
}

func TestSnapshotterTimesOutNamingTheSnapshot(t *testing.T) {
	ctx := context.Background()
	dyn := newFakeDynamic()
	s := snapshotter{dyn: dyn, namespace: ns, sts: "db", class: "std"}
	_, err := s.ensure(ctx, "snap", "data-db-4")
	require.NoError(t, err)
	err = s.waitReady(ctx, "snap", 200*time.Millisecond)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "waiting for volumesnapshot snap to be readyToUse")
	assert.False(t, errors.Is(err, context.Canceled))
}
