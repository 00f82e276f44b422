package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/pluginstest"
)

// Fixtures: statusSQL's batch output recorded on MariaDB 10.11 (a
// primary, its replica, the replica with its SQL thread stopped by a
// duplicate key), and a MySQL 8.0 replica with the Replica_/Source_
// column names.
func read(t *testing.T, name string) string { return pluginstest.Testdata(t, name) }

func TestParseMariaDB(t *testing.T) {
	st, err := ParseStatus(read(t, "mariadb-primary.txt"))
	require.NoError(t, err)
	assert.Equal(t, "OFF", st.Variables["read_only"])
	assert.Empty(t, st.Replicas)
	m := MemberFrom(st)
	assert.Equal(t, plugins.RolePrimary, m.Role)
	assert.Equal(t, "read-write", m.State)
	assert.Equal(t, "0-1-3", m.Details["gtid"])

	st, err = ParseStatus(read(t, "mariadb-replica.txt"))
	require.NoError(t, err)
	require.Len(t, st.Replicas, 1)
	m = MemberFrom(st)
	assert.Equal(t, plugins.RoleReplica, m.Role)
	assert.Equal(t, "Yes/Yes", m.State)
	require.NotNil(t, m.LagSeconds)
	assert.Equal(t, 0.0, *m.LagSeconds)
	assert.Equal(t, "127.0.0.1:39901", m.Details["source"])
	assert.NotEmpty(t, m.Details["gtid"])
	assert.Empty(t, m.Details["warning"], "read-only replica")
}

func TestParseBrokenReplica(t *testing.T) {
	st, err := ParseStatus(read(t, "mariadb-replica-broken.txt"))
	require.NoError(t, err)
	m := MemberFrom(st)
	assert.Equal(t, plugins.RoleReplica, m.Role)
	assert.Equal(t, "Yes/No", m.State)
	assert.Nil(t, m.LagSeconds, "Seconds_Behind_Master is NULL with the SQL thread stopped")
	assert.Contains(t, m.Details["lastSQLError"], "Duplicate entry '1' for key 'PRIMARY'")
	assert.Equal(t, "0-1-4", m.Details["gtid"])
	assert.Equal(t, "replica is writable (read_only is OFF)", m.Details["warning"])

	ok, reason := New().Healthy([]plugins.Member{{Pod: "db-0", Role: plugins.RolePrimary}, withPod(m, "db-1")}, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "db-1 replication threads IO/SQL are Yes/No (Could not execute Write_rows_v1 event on table d.u; Duplicate entry")
}

func TestParseMySQL8(t *testing.T) {
	st, err := ParseStatus(read(t, "mysql8-replica.txt"))
	require.NoError(t, err)
	m := MemberFrom(st)
	assert.Equal(t, plugins.RoleReplica, m.Role)
	assert.Equal(t, "Yes/Yes", m.State)
	assert.Equal(t, 42.0, *m.LagSeconds)
	assert.Equal(t, "mysql-0.mysql.db.svc.cluster.local:3306", m.Details["source"])
	assert.Equal(t, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-112, 5b0e1fd2-71ca-11e1-9e33-c80aa9429562:1-3", m.Details["gtid"],
		"the escaped newline of a multi-source GTID set is read back")
	assert.Equal(t, "binlog.000012:80001", m.Details["executedLog"])
	assert.Equal(t, "ON", m.Details["super_read_only"])

	members := []plugins.Member{{Pod: "db-0", Role: plugins.RolePrimary}, withPod(m, "db-1")}
	ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 30})
	assert.False(t, ok)
	assert.Equal(t, "db-1: 42.0s behind (bound 30s)", reason)
	ok, _ = New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 60})
	assert.True(t, ok)
	ok, reason = New().Healthy(members, plugins.HealthOptions{MaxLagBytes: 1 << 20})
	assert.False(t, ok, "MySQL measures no bytes: a byte bound cannot be vouched for")
	assert.Contains(t, reason, "lag in bytes unknown")
}

func TestReadOnlyWithoutSourceIsUnknown(t *testing.T) {
	st := Status{Variables: map[string]string{"read_only": "ON"}}
	m := MemberFrom(st)
	assert.Equal(t, plugins.RoleUnknown, m.Role)
	assert.Equal(t, "read-only, not replicating", m.State)
}

func TestParseErrors(t *testing.T) {
	_, err := ParseStatus("Variable_name\tValue\nread_only\tOFF\n")
	assert.ErrorContains(t, err, "replica status is missing")
	_, err = ParseStatus("Variable_name\tValue\nmarker\n" + marker + "\na\tb\n1\n")
	assert.ErrorContains(t, err, "replica status row has 1 columns, header 2")
}

func TestUnescape(t *testing.T) {
	assert.Equal(t, "a\tb\nc\\d\x00", unescape(`a\tb\nc\\d\0`))
	assert.Equal(t, `trailing\`, unescape(`trailing\`))
}

func withPod(m plugins.Member, pod string) plugins.Member {
	m.Pod = pod
	return m
}

func target(ex kube.Executor, pods ...string) plugins.Target {
	return pluginstest.Target(ex, "db", corev1.Container{Name: "mariadb", Image: "mariadb:11"}, pods...)
}

func TestMembersFallsBackToShowSlaveStatus(t *testing.T) {
	_, ex := kubefake.NewClient()
	replica := read(t, "mariadb-replica.txt")
	ex.HandleAll(func(req kube.ExecRequest) (kube.ExecResult, error) {
		sql := req.Command[len(req.Command)-1]
		switch {
		case req.Pod == "db-0":
			return kube.ExecResult{Stdout: []byte(read(t, "mariadb-primary.txt"))}, nil
		case strings.HasSuffix(sql, "SHOW REPLICA STATUS"):
			// An old server: the first two result sets, then a syntax error.
			head, _, _ := strings.Cut(replica, "Slave_IO_State")
			return kube.ExecResult{Stdout: []byte(head), Stderr: []byte("ERROR 1064 (42000) at line 1: You have an error in your SQL syntax"), ExitCode: 1}, nil
		case strings.HasSuffix(sql, "SHOW SLAVE STATUS"):
			return kube.ExecResult{Stdout: []byte(replica)}, nil
		}
		return kube.ExecResult{}, fmt.Errorf("unexpected %q", sql)
	})
	members, err := New().Members(context.Background(), target(ex, "db-0", "db-1"))
	require.NoError(t, err)
	assert.Equal(t, plugins.RolePrimary, members[0].Role)
	assert.Equal(t, plugins.RoleReplica, members[1].Role)
	assert.Equal(t, "Yes/Yes", members[1].State)
	ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 1})
	assert.True(t, ok, reason)
}

func TestBeforeRemoveRefusesThePrimary(t *testing.T) {
	_, ex := kubefake.NewClient()
	ex.Handle("db-0", kubefake.Reply(read(t, "mariadb-primary.txt"), 0))
	ex.Handle("db-1", kubefake.Reply(read(t, "mariadb-replica.txt"), 0))
	tg := target(ex, "db-0", "db-1")
	assert.ErrorContains(t, New().BeforeRemove(context.Background(), tg, 0, plugins.RemoveOptions{}), "pod db-0 is the primary")
	var events []plugins.RemoveEvent
	require.NoError(t, New().BeforeRemove(context.Background(), tg, 1, plugins.RemoveOptions{Events: func(e plugins.RemoveEvent) { events = append(events, e) }}))
	require.Len(t, events, 1)
	assert.Equal(t, "pod db-1 is not the primary (role replica)", events[0].Message)
	require.NoError(t, New().AfterRemove(context.Background(), tg, 1, plugins.RemoveOptions{}))
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"mysql:8.4", "mariadb:11", "bitnami/mariadb-galera:11", "percona/percona-server:8.0", "percona/percona-xtradb-cluster:8.0"},
		[]string{"percona/percona-server-mongodb:7", "prom/mysqld-exporter", "bitnami/mysqld-exporter", "percona/percona-distribution-postgresql:16", "mysql/mysql-router:8"})
}

func TestClientScriptMapsTheContainersCredentials(t *testing.T) {
	path := pluginstest.FakeProgram(t, "mariadb", "MYSQL_PWD")
	got := pluginstest.RunScript(t, append(path, "MARIADB_ROOT_PASSWORD=s3cret"), command("SELECT 1"))
	assert.Equal(t, []string{"-u", "root", "--connect-timeout=5", "--batch", "-e", "SELECT 1"}, got["arg"])
	assert.Equal(t, []string{"s3cret"}, got["MYSQL_PWD"], "the password travels in the environment, never as an argument")
	got = pluginstest.RunScript(t, append(path, "MYSQL_ROOT_PASSWORD=other", "MYSQL_ROOT_USER=admin"), command("SELECT 1"))
	assert.Equal(t, "admin", got["arg"][1])
	assert.Equal(t, []string{"other"}, got["MYSQL_PWD"])
	got = pluginstest.RunScript(t, path, command("SELECT 1"))
	assert.Equal(t, []string{"<unset>"}, got["MYSQL_PWD"])
}

// FuzzClientScriptPassesSQLVerbatim: the SQL reaches the client as one
// argument, byte for byte.
func FuzzClientScriptPassesSQLVerbatim(f *testing.F) {
	for _, seed := range []string{"SHOW REPLICA STATUS", "$(id)", "`id`", "'\"; exit 1", "\n-e\n", "$MYSQL_PWD"} {
		f.Add(seed)
	}
	path := pluginstest.FakeProgram(f, "mariadb", "MYSQL_PWD")
	f.Fuzz(func(t *testing.T, sql string) {
		if strings.ContainsRune(sql, 0) {
			return
		}
		args := pluginstest.RunScript(t, path, command(sql))["arg"]
		if len(args) != 6 || args[5] != sql {
			t.Fatalf("client got %q, want %q last", args, sql)
		}
	})
}
