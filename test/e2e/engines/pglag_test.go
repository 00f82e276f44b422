package engines

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// A replica restarted after the last commit, with the primary idle since,
// has replayed everything: its lag in seconds is zero, and a seconds gate
// passes. Every rollout restarts replicas, so a quiet database meets this
// on every rollout.
func TestPostgresLagIsZeroAfterReplicaRestartOnIdlePrimary(t *testing.T) {
	s := newPGSet(t)
	s.scaleTo(2)
	s.primary.Query(t, "INSERT INTO filler VALUES (0)")
	// The primary logs a standby snapshot up to 15s after activity; past
	// that it writes nothing more while idle.
	time.Sleep(16 * time.Second)
	lsn := s.primary.Query(t, "SELECT pg_current_wal_lsn()")
	require.Eventually(t, func() bool {
		return s.replica.Query(t, fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'", lsn)) == "t"
	}, waitTimeout, 200*time.Millisecond, "the replica replays everything before it restarts")
	s.replica.Restart(t)
	// Idle for longer than the bound: the age of the last replayed
	// commit exceeds it, the lag must not.
	const bound = 3.0
	time.Sleep(time.Duration(bound+2) * time.Second)

	ms := members(t, s.engine, s.target())
	require.Len(t, ms, 2)
	require.Equal(t, plugins.RoleReplica, ms[1].Role)
	require.Equal(t, lsn, s.primary.Query(t, "SELECT pg_current_wal_lsn()"), "the primary stayed idle")
	// The case at hand: after the restart the receive position is the
	// start of a WAL segment, below the replay position.
	require.NotEqual(t, ms[1].Details["receiveLsn"], ms[1].Details["replayLsn"])
	require.NotNil(t, ms[1].LagSeconds)
	assert.Equal(t, 0.0, *ms[1].LagSeconds, "caught up with an idle primary")
	ok, reason := s.engine.Healthy(ms, plugins.HealthOptions{MaxLagSeconds: bound})
	assert.True(t, ok, reason)

	gate := plugins.HealthGate(s.engine, s.target(), plugins.HealthOptions{MaxLagSeconds: bound}, 500*time.Millisecond)
	require.NoError(t, wait.WaitGates(context.Background(), s.tracker, 10*time.Second, gate))
}
