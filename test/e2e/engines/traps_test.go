package engines

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// statusReport runs status -o json with args and returns the report and
// the exit code.
func statusReport(t *testing.T, ns string, args ...string) (status.Report, int) {
	t.Helper()
	out, code := runStatus(t, ns, append(args, "-o", "json")...)
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	for _, reason := range r.Verdict.Reasons {
		t.Logf("reason %s %s %s: %s", reason.Severity, reason.Code, reason.Object, reason.Message)
	}
	return r, code
}

// reasonsByObject maps "Code object" to the reason.
func reasonsByObject(r status.Report) map[string]status.Reason {
	out := map[string]status.Reason{}
	for _, reason := range r.Verdict.Reasons {
		out[string(reason.Code)+" "+reason.Object] = reason
	}
	return out
}

// On a real primary and replica: an inactive slot retaining WAL, the
// leftover slots of a removed member (by convention and by another
// name), a replica with replay paused, then a replica whose replication
// is broken, each named in status with its state and exit code.
func TestStatusNamesPostgresTraps(t *testing.T) {
	s := newPGSet(t)
	s.scaleTo(2)
	s.primary.Query(t, "SELECT pg_create_physical_replication_slot('standby_pg_2', true)")
	s.replica.Query(t, "SELECT pg_wal_replay_pause()")
	s.primary.Query(t, "INSERT INTO filler SELECT generate_series(1, 50000)")

	var r status.Report
	var code int
	deadline := time.Now().Add(waitTimeout)
	for {
		r, code = statusReport(t, s.ns, "pg", "--max-slot-wal", "1Mi")
		if r.Verdict.Has(status.CodeReplayPaused) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	got := reasonsByObject(r)
	assert.Equal(t, status.StateNeedsAttention, r.Verdict.State)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	assert.Contains(t, got, "LeftoverSlot slot/pg_2")
	assert.Contains(t, got, "LeftoverSlot slot/standby_pg_2")
	assert.Contains(t, got["LeftoverSlot slot/standby_pg_2"].Message, "named for ordinal 2, which is not a member, retaining")
	assert.Contains(t, got, "SlotRetainingWAL slot/backup_keep")
	assert.NotContains(t, got, "LeftoverSlot slot/backup_keep", "an unrelated slot is not a member's")
	assert.Contains(t, got["ReplayPaused pod/pg-1"].Message, "replica pg-1 has WAL replay paused")
	assert.Equal(t, status.SeverityWarning, got["ReplayPaused pod/pg-1"].Severity)
	require.NotNil(t, r.Engine)
	assert.NotEmpty(t, r.Engine.Traps, "the traps are in the JSON model")

	// status --max-lag names the paused replica's lag.
	r, _ = statusReport(t, s.ns, "pg", "--max-lag", "1Ki")
	assert.Contains(t, reasonsByObject(r), "ReplicationLag pod/pg-1")

	// Point the replica at a port nothing listens on: its replication
	// is broken, the set is Degraded, and the primary has no replica.
	s.replica.Query(t, "SELECT pg_wal_replay_resume()")
	s.replica.Query(t, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%s user=postgres'", closedPort(t)))
	s.replica.Query(t, "SELECT pg_reload_conf()")
	deadline = time.Now().Add(waitTimeout)
	for {
		r, code = statusReport(t, s.ns, "pg")
		if r.Verdict.Has(status.CodeReplicationBroken) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	got = reasonsByObject(r)
	assert.Equal(t, status.StateDegraded, r.Verdict.State)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	assert.Equal(t, status.SeverityError, got["ReplicationBroken pod/pg-1"].Severity)
	assert.Contains(t, got, "NoReplicasConnected pod/pg-0")
	assert.NotContains(t, fmt.Sprint(r.Verdict.Reasons), pgPassword)
	var replica plugins.Member
	for _, m := range r.Members {
		if m.Pod == "pg-1" {
			replica = m
		}
	}
	assert.Equal(t, plugins.RoleReplica, replica.Role)
}
