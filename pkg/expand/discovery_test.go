package expand

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
)

// The smaller retry after a failed expansion is offered only where the
// server lets a request go down (1.32 or later).
func TestTheSmallerRetryIsOfferedOnlyWhereTheServerAllowsIt(t *testing.T) {
	for gitVersion, offered := range map[string]bool{"v1.31.9": false, "v1.32.2": true, "v1.37.2": true} {
		h := newHarness(t, cluster(2, classLimited, "1Gi")...)
		h.sim.cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: gitVersion}
		_, _, err := h.expand(context.Background(), t, testParams("2Gi"))
		var failed *ResizeFailedError
		require.ErrorAs(t, err, &failed, gitVersion)

		plan, err := h.expander(testParams(limitedMax)).Preflight(context.Background())
		if offered {
			require.NoError(t, err, gitVersion)
			assert.Equal(t, ActionRetry, plan.Ordinals[0].Action, gitVersion)
			continue
		}
		var refused *PreflightError
		require.ErrorAs(t, err, &refused, gitVersion)
		assert.Contains(t, err.Error(), "an earlier resize of pvc data-db-1 to 2Gi failed")
		assert.Contains(t, err.Error(), "this cluster (Kubernetes v1.31.9) does not let a request go down: --size 1536Mi is below it")
		assert.Equal(t, "2Gi", request(h.pvc(t, 1)), "nothing changed")
	}
}
