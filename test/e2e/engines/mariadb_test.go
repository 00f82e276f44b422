package engines

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
)

const mariadbPassword = "maria-s3cret"

// mariaEnv points the client at the server; the password is the
// official image's MARIADB_ROOT_PASSWORD, which the engine hands to the
// client as MYSQL_PWD inside the pod.
func mariaEnv(m *dbserver.MariaDB) map[string]string {
	env := m.Env()
	env["MARIADB_ROOT_PASSWORD"] = mariadbPassword
	return env
}

func TestMariaDBRolesAndLag(t *testing.T) {
	primary := dbserver.StartMariaDB(t, dbserver.MariaDBOptions{Password: mariadbPassword})
	replica := primary.StartReplica(t)
	primary.Query(t, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1)")
	b := newBed(t, "maria", "mariadb:10.11", []map[string]string{mariaEnv(primary), mariaEnv(replica)})
	e, err := all.New().Detect(b.tracker.Snapshot().StatefulSet, "")
	require.NoError(t, err)
	require.NotNil(t, e)
	require.Equal(t, "mysql", e.Name())

	ctx := context.Background()
	gate := plugins.HealthGate(e, b.target(), plugins.HealthOptions{MaxLagSeconds: 30}, 500*time.Millisecond)
	require.NoError(t, wait.WaitGates(ctx, b.tracker, waitTimeout, gate), "binlog replication healthy")

	ms := members(t, e, b.target())
	mustNotLeak(t, mariadbPassword, ms)
	require.Len(t, ms, 2)
	assert.Equal(t, plugins.RolePrimary, ms[0].Role)
	assert.Equal(t, "OFF", ms[0].Details["read_only"])
	assert.Equal(t, plugins.RoleReplica, ms[1].Role)
	assert.Equal(t, "Yes/Yes", ms[1].State)
	require.NotNil(t, ms[1].LagSeconds)
	assert.Equal(t, 0.0, *ms[1].LagSeconds)
	assert.Equal(t, "ON", ms[1].Details["read_only"])
	assert.NotEmpty(t, ms[1].Details["gtid"], "GTID position")

	// Break the replica's SQL thread: a row it already has arrives again.
	replica.Query(t, "SET GLOBAL read_only = OFF; INSERT INTO app.t VALUES (2); SET GLOBAL read_only = ON")
	primary.Query(t, "INSERT INTO app.t VALUES (2)")
	gate = plugins.HealthGate(e, b.target(), plugins.HealthOptions{}, 500*time.Millisecond)
	err = wait.WaitGates(ctx, b.tracker, 10*time.Second, gate)
	var timeout *wait.TimeoutError
	require.True(t, errors.As(err, &timeout), "want a timeout, got %v", err)
	assert.Contains(t, err.Error(), "maria-1 replication threads IO/SQL are Yes/No")
	assert.Contains(t, err.Error(), "Duplicate entry '2'")

	ms = members(t, e, b.target())
	assert.Equal(t, "Yes/No", ms[1].State)
	assert.Contains(t, ms[1].Details["lastSQLError"], "Duplicate entry")

	assert.ErrorContains(t, e.BeforeRemove(ctx, b.target(), 0, plugins.RemoveOptions{}), "pod maria-0 is the primary")
	assert.NoError(t, e.BeforeRemove(ctx, b.target(), 1, plugins.RemoveOptions{}))
}
