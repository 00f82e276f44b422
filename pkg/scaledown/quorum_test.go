package scaledown

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// quorumEngine is fakeEngine with a voting membership of every member;
// members with Error set are voters that do not answer.
type quorumEngine struct{ *fakeEngine }

func (q quorumEngine) Membership(context.Context, plugins.Target) (plugins.Membership, error) {
	m := plugins.Membership{Engine: "fake"}
	for _, mem := range q.members {
		m.Voters = append(m.Voters, plugins.Voter{Name: mem.Pod, Pod: mem.Pod, Ordinal: mem.Ordinal, Healthy: mem.Error == ""})
	}
	return m, nil
}

func quorumEnv(t *testing.T, n, leader int, down ...int) *env {
	e := newEnv(t, objects(fixture(n))...)
	e.engine.members = primaryAt(leader, n)
	for _, d := range down {
		e.engine.members[d].Role = plugins.RoleUnknown
		e.engine.members[d].Error = "connection refused"
	}
	return e
}

func quorumDeps(e *env) Deps {
	d := e.deps()
	q := quorumEngine{e.engine}
	d.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return q, nil }
	return d
}

func TestPrepareRefusesQuorumLossWithNumbers(t *testing.T) {
	cases := []struct {
		n, to int32
		down  []int
		want  []string
	}{
		{n: 3, to: 1, down: []int{0}, want: []string{"removing db-2 leaves 2 voters of which 1 answer (db-1), below the quorum of 2", "bring back db-0 first"}},
		{n: 5, to: 2, down: []int{0}, want: []string{"removing db-2 leaves 2 voters of which 1 answer (db-1), below the quorum of 2", "with 2 voters fake needs both for quorum (2)"}},
		{n: 3, to: 2, want: []string{"with 2 voters fake needs both for quorum (2): losing either member"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d to %d with %v down", c.n, c.to, c.down), func(t *testing.T) {
			e := quorumEnv(t, int(c.n), 0, c.down...)
			c2 := cfg(c.to)
			c2.Force = true
			_, err := Prepare(context.Background(), c2, quorumDeps(e))
			requireRefused(t, err, false, c.want...)
			assert.Empty(t, e.engine.Calls(), "nothing was changed")
		})
	}
}

func TestPrepareQuorumEngineMayRemoveTheLeader(t *testing.T) {
	// A consensus engine moves the leadership away itself: the leader among
	// the removed ordinals is no refusal, quorum is what counts.
	e := quorumEnv(t, 5, 4)
	p, err := Prepare(context.Background(), cfg(3), quorumDeps(e))
	require.NoError(t, err)
	assert.Equal(t, "db-4", p.Primary)

	// The same with an engine that is not a quorum engine is refused.
	e = quorumEnv(t, 5, 4)
	_, err = Prepare(context.Background(), cfg(3), e.deps())
	requireRefused(t, err, false, "pod db-4 is the primary")
}
