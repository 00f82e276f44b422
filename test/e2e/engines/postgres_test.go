package engines

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

const pgPassword = "pg-s3cret-Ω"

// pgEnv is a pod's environment: libpq's host and port, and the password
// the way the official image keeps it (POSTGRES_PASSWORD), which the
// engine maps onto PGPASSWORD inside the pod.
func pgEnv(p *dbserver.Postgres) map[string]string {
	env := p.Env()
	delete(env, "PGUSER") // the engine's default, postgres
	delete(env, "PGDATABASE")
	env["POSTGRES_PASSWORD"] = pgPassword
	return env
}

// pgSet is a primary (pod 0) with a streaming replica through slot pg_1
// (pod 1), and a pod 2 with no server behind it.
type pgSet struct {
	*bed
	primary, replica *dbserver.Postgres
	engine           plugins.Engine
}

func newPGSet(t *testing.T) *pgSet {
	t.Helper()
	p := dbserver.StartPostgres(t, dbserver.PostgresOptions{Password: pgPassword})
	r := p.StartReplica(t, "pg_1")
	p.Query(t, "SELECT pg_create_physical_replication_slot('pg_2', true)")
	p.Query(t, "SELECT pg_create_physical_replication_slot('backup_keep', true)")
	p.Query(t, "CREATE TABLE filler AS SELECT generate_series(1, 50000) AS n")
	b := newBed(t, "pg", "docker.io/library/postgres:15", []map[string]string{
		pgEnv(p), pgEnv(r), {"PGHOST": "127.0.0.1", "PGPORT": closedPort(t), "POSTGRES_PASSWORD": pgPassword},
	})
	e, err := all.New().Detect(b.tracker.Snapshot().StatefulSet, "")
	require.NoError(t, err)
	require.NotNil(t, e, "postgres image not detected")
	require.Equal(t, "postgres", e.Name())
	return &pgSet{bed: b, primary: p, replica: r, engine: e}
}

func slotNames(t *testing.T, p *dbserver.Postgres) []string {
	out := p.Query(t, "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")
	return strings.Split(out, ",")
}

func TestPostgresScaleDownDropsOnlyTheRemovedMembersSlot(t *testing.T) {
	s := newPGSet(t)
	ctx := context.Background()
	got, record := events(t)
	opts := plugins.RemoveOptions{Wait: time.Minute, Events: record}

	assert.ErrorContains(t, s.engine.BeforeRemove(ctx, s.target(), 0, opts), "pod pg-0 is the primary")

	// 3 → 2: pg-2 had no server; its slot pg_2 is inactive.
	require.NoError(t, s.engine.BeforeRemove(ctx, s.target(), 2, opts))
	s.scaleTo(2)
	dry := opts
	dry.DryRun = true
	require.NoError(t, s.engine.AfterRemove(ctx, s.target(), 2, dry))
	assert.Equal(t, []string{"backup_keep", "pg_1", "pg_2"}, slotNames(t, s.primary), "a dry run drops nothing")
	require.NoError(t, s.engine.AfterRemove(ctx, s.target(), 2, opts))
	assert.Equal(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary))
	require.NoError(t, s.engine.AfterRemove(ctx, s.target(), 2, opts), "running it again is not an error")
	assert.Equal(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary))

	// 2 → 1: the pod is gone but its server still streams, so pg_1 stays
	// active and must not be dropped.
	require.NoError(t, s.engine.BeforeRemove(ctx, s.target(), 1, opts))
	s.scaleTo(1)
	short := opts
	short.Wait = 3 * time.Second
	err := s.engine.AfterRemove(ctx, s.target(), 1, short)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replication slot pg_1 on pg-0 is still active")
	assert.Equal(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary), "an active slot is never dropped")

	// Status names the slot of the removed ordinal that a server whose pod
	// is gone still streams from: it pins WAL on the primary as long as
	// that server runs, and nothing else would tell.
	r, code := statusReport(t, s.ns, "pg")
	reasons := reasonsByObject(r)
	require.Contains(t, reasons, "LeftoverSlot slot/pg_1", "%+v", r.Verdict)
	assert.Contains(t, reasons["LeftoverSlot slot/pg_1"].Message, "replication slot pg_1 on pg-0 is named for ordinal 1, which is not a member, and is still active")
	assert.Equal(t, cmdutil.ExitDegraded, code)

	// Once the replica stops, the slot goes inactive and is dropped.
	*got = nil
	done := make(chan error, 1)
	go func() { done <- s.engine.AfterRemove(ctx, s.target(), 1, opts) }()
	time.Sleep(2 * time.Second)
	s.replica.Stop(t)
	require.NoError(t, <-done)
	assert.Equal(t, []string{"backup_keep"}, slotNames(t, s.primary), "exactly the removed member's slot went")
	var actions []plugins.RemoveAction
	for _, ev := range *got {
		actions = append(actions, ev.Action)
	}
	assert.Equal(t, []plugins.RemoveAction{plugins.ActionWaiting, plugins.ActionChanged}, actions)
	mustNotLeak(t, pgPassword, *got)
}

// TestPostgresReplicaStreamingFromAnotherServer: pg-2's server is a
// replica that streams, but from a primary outside the StatefulSet (as
// after a failover that left it on the old primary): its own WAL receiver
// says "streaming", yet pg-0, the primary, has no standby for it. That is
// replication broken, not healthy, and the rollout gate must not pass.
func TestPostgresReplicaStreamingFromAnotherServer(t *testing.T) {
	p := dbserver.StartPostgres(t, dbserver.PostgresOptions{Password: pgPassword})
	r := p.StartReplica(t, "pg_1")
	other := dbserver.StartPostgres(t, dbserver.PostgresOptions{Password: pgPassword})
	stray := other.StartReplica(t, "pg_2")
	b := newBed(t, "pg", "docker.io/library/postgres:15", []map[string]string{pgEnv(p), pgEnv(r), pgEnv(stray)})

	rep, code := statusReport(t, b.ns, "pg")
	reasons := reasonsByObject(rep)
	require.Contains(t, reasons, "ReplicationBroken pod/pg-2", "%+v", rep.Verdict)
	assert.Contains(t, reasons["ReplicationBroken pod/pg-2"].Message, "replica pg-2 streams from "+stray.Primary.Host+":")
	assert.Contains(t, reasons["ReplicationBroken pod/pg-2"].Message, "not from the primary pg-0: no member lists it as a standby")
	assert.NotContains(t, reasons, "ReplicationBroken pod/pg-1", "pg-1 streams from pg-0")
	assert.Equal(t, cmdutil.ExitDegraded, code)
	require.NotNil(t, rep.Engine)
	assert.False(t, rep.Engine.Healthy)
	assert.Contains(t, rep.Engine.Reason, "pg-2")
}

// TestPostgresScaleDownOfAStoppedReplicaNamesTheSlotThatMayBeIts: pg-1
// streamed through slot replica_c, a name no convention gives it, and its
// server is stopped, so which slot it used cannot be read. The scale-down
// drops nothing it cannot attribute, and says which slot may be pg-1's.
func TestPostgresScaleDownOfAStoppedReplicaNamesTheSlotThatMayBeIts(t *testing.T) {
	p := dbserver.StartPostgres(t, dbserver.PostgresOptions{Password: pgPassword})
	r := p.StartReplica(t, "replica_c")
	b := newBed(t, "pg", "docker.io/library/postgres:15", []map[string]string{pgEnv(p), pgEnv(r)})
	r.Stop(t)
	res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 4*time.Minute, "scale-down", "pg", "--replicas", "1", "--yes", "--force")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "pg-1 does not answer, so the slot it streams from cannot be read, and no slot on pg-0 is named for it")
	assert.Contains(t, res.Out, "inactive physical slots no member streams from: replica_c")
	assert.Equal(t, []string{"replica_c"}, slotNames(t, p), "nothing it cannot attribute is dropped")
}
