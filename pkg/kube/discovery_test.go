package kube_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

func TestParseServerAndTheVersionDecisions(t *testing.T) {
	for _, tc := range []struct {
		git                            string
		known, tested, onDelete, lower bool
	}{
		{git: "v1.37.2", known: true, tested: true, onDelete: true, lower: true},
		{git: "v1.38.0", known: true, tested: false, onDelete: true, lower: true},
		{git: "v1.36.5-eks-1234", known: true, tested: true, onDelete: false, lower: true},
		{git: "v1.32.2", known: true, tested: true, onDelete: false, lower: true},
		{git: "v1.31.9+k3s1", known: true, tested: false, onDelete: false, lower: false},
		{git: "v1.29.0", known: true, tested: false, onDelete: false, lower: false},
		// A version that is not one is not judged, and taken as the newest.
		{git: "v0.0.0-master+$Format:%H$", known: false, tested: true, onDelete: true, lower: true},
		{git: "", known: false, tested: true, onDelete: true, lower: true},
	} {
		s := kube.ParseServer(tc.git)
		assert.Equal(t, tc.known, s.Known, tc.git)
		assert.Equal(t, tc.tested, s.Tested(), tc.git)
		assert.Equal(t, tc.onDelete, s.OnDeleteCurrentRevisionReliable(), tc.git)
		assert.Equal(t, tc.lower, s.LowersRequestAfterFailedExpansion(), tc.git)
		if tc.tested {
			assert.Empty(t, s.RangeWarning(), tc.git)
		} else {
			assert.Contains(t, s.RangeWarning(), "Kubernetes "+tc.git+", outside the range kubectl-sts is tested on (v1.32-v1.37)")
		}
	}
}

func TestServerAsksDiscovery(t *testing.T) {
	cs := fake.NewClientset()
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.33.4"}
	c := &kube.Client{Kube: cs}
	s, err := c.Server(context.Background())
	require.NoError(t, err)
	assert.Equal(t, kube.Server{GitVersion: "v1.33.4", Major: 1, Minor: 33, Known: true}, s)
}
