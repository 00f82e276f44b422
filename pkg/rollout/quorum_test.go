package rollout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// quorumEngine is a consensus engine whose voters are the pods, lost
// when named in lost.
type quorumEngine struct {
	*fakeEngine
	lost map[string]bool
}

func (q quorumEngine) Membership(_ context.Context, t plugins.Target) (plugins.Membership, error) {
	m := plugins.Membership{Engine: "fakedb"}
	for _, p := range t.SortedPods() {
		m.Voters = append(m.Voters, plugins.Voter{Name: p.Name, Pod: p.Name, Ordinal: plugins.Ordinal(t.StatefulSet, p), Healthy: !q.lost[p.Name]})
	}
	return m, nil
}

func TestRolloutRefusedWhenAVoterIsAlreadyLost(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)
	e := quorumEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, lost: map[string]bool{"db-1": true}}
	r := c.runner("me", nil)
	r.Engines = plugins.NewRegistry(e)
	_, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "the fakedb cluster has already lost db-1: 2 of 3 voters answer and quorum is 2")

	e.lost = nil
	r.Engines = plugins.NewRegistry(e)
	_, err = r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	require.NoError(t, err)
}
