package plugins_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func TestHealthGate(t *testing.T) {
	eng := &fakeEngine{name: "postgres", members: []plugins.Member{{Pod: "db-0", Role: plugins.RolePrimary}}}
	s := sts(nil)
	snap := wait.Snapshot{StatefulSet: s, Pods: map[string]*corev1.Pod{"db-0": runningPod("db-0", corev1.PodRunning)}}
	g := plugins.HealthGate(eng, plugins.Target{}, plugins.HealthOptions{MaxLagBytes: 1 << 20, MaxLagSeconds: 5}, time.Hour)
	assert.Equal(t, "postgres replication to be healthy with lag under 1048576 bytes and 5s", g.Name())

	v, reason, err := g.Check(context.Background(), snap)
	require.NoError(t, err)
	assert.Equal(t, wait.Pass, v)
	assert.Equal(t, "healthy", reason)

	// Within the interval the answer is reused, not asked again.
	eng.members = []plugins.Member{{Pod: "db-0", Role: plugins.RoleUnknown, Error: "timeout"}}
	v, _, _ = g.Check(context.Background(), snap)
	assert.Equal(t, wait.Pass, v)
	assert.Equal(t, int32(1), eng.calls.Load())
	tg, ok := g.(wait.TimedGate)
	require.True(t, ok, "the gate asks to be re-checked")
	assert.False(t, tg.NextCheck().IsZero())

	g = plugins.HealthGate(eng, plugins.Target{}, plugins.HealthOptions{}, time.Nanosecond)
	v, reason, err = g.Check(context.Background(), snap)
	require.NoError(t, err)
	assert.Equal(t, wait.NotYet, v, "unhealthy is not-yet: the wait's timeout decides")
	assert.Contains(t, reason, "no answer from db-0 (timeout)")

	eng.err = errors.New("boom")
	time.Sleep(time.Millisecond)
	v, reason, err = g.Check(context.Background(), snap)
	require.NoError(t, err)
	assert.Equal(t, wait.NotYet, v)
	assert.Contains(t, reason, "boom")
}
