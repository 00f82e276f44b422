package status_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
)

// onDelete returns a set of 3 with the OnDelete strategy whose template
// moved to UpdateHash: the pods of updated were deleted and came back on
// it. status.currentRevision stays at CurrentHash, as the controller
// before 1.37 leaves it.
func onDelete(updated ...int) *statustest.Fixture {
	f := fixture(3)
	f.StatefulSet.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	f.StatefulSet.Status.UpdateRevision = f.Revision(statustest.UpdateHash)
	for _, n := range updated {
		f.Recreate(n, statustest.UpdateHash, 0, true)
	}
	f.StatefulSet.Status.CurrentRevision = f.Revision(statustest.CurrentHash)
	return f
}

func TestOnDeleteCurrentRevisionComesFromThePodsBefore137(t *testing.T) {
	old := status.Options{Server: kube.ParseServer("v1.32.2")}
	f := onDelete(0, 1, 2)

	r := summarize(f, old)
	assert.Equal(t, f.Revision(statustest.UpdateHash), r.StatefulSet.CurrentRevision, "every pod runs the update revision")
	assert.Equal(t, status.RevisionFromPods, r.StatefulSet.CurrentRevisionSource)
	assert.Equal(t, int32(3), r.StatefulSet.Replicas.Current)
	assert.True(t, r.Verdict.Healthy, "no rollout is left: %+v", r.Verdict)
	for _, o := range r.Ordinals {
		assert.Equal(t, status.RevisionCurrent, o.Pod.RevisionRole, o.PodName)
	}

	// Halfway, the current revision is what the pods not yet replaced run.
	r = summarize(onDelete(2), old)
	assert.Equal(t, f.Revision(statustest.CurrentHash), r.StatefulSet.CurrentRevision)
	assert.Empty(t, r.StatefulSet.CurrentRevisionSource, "the server's value was right")

	// A second template change: the server still names the creation
	// revision, which no pod runs any more.
	g := onDelete()
	for n := range 3 {
		g.Recreate(n, statustest.OtherHash, 0, true)
	}
	g.StatefulSet.Status.CurrentRevision = g.Revision(statustest.CurrentHash)
	r = summarize(g, old)
	assert.Equal(t, g.Revision(statustest.OtherHash), r.StatefulSet.CurrentRevision)
	assert.Equal(t, status.RevisionFromPods, r.StatefulSet.CurrentRevisionSource)
}

func TestOnDeleteCurrentRevisionIsTheServersFrom137(t *testing.T) {
	f := onDelete(0, 1, 2)
	for _, v := range []string{"v1.37.2", ""} {
		r := summarize(f, status.Options{Server: kube.ParseServer(v)})
		assert.Equal(t, f.Revision(statustest.CurrentHash), r.StatefulSet.CurrentRevision, "server %q: the status is trusted", v)
		assert.Empty(t, r.StatefulSet.CurrentRevisionSource)
	}
	// RollingUpdate's status is right on every version.
	g := fixture(3).StartRollout(0, 2)
	r := summarize(g, status.Options{Server: kube.ParseServer("v1.32.2")})
	assert.Equal(t, g.StatefulSet.Status.CurrentRevision, r.StatefulSet.CurrentRevision)
}
