// Package mysql is the MySQL and MariaDB engine: roles from read_only and
// SHOW REPLICA STATUS (SHOW SLAVE STATUS on servers older than MySQL
// 8.0.22 and MariaDB 10.5.1), replication thread states, seconds behind
// the source, the last errors and the GTID position.
package mysql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "mysql"

// clientScript runs the mysql (or mariadb) client with the container's
// own secrets: MYSQL_PWD, else the images' MARIADB_ROOT_PASSWORD or
// MYSQL_ROOT_PASSWORD, as root (or MARIADB_ROOT_USER / MYSQL_ROOT_USER).
// The client reads MYSQL_PWD itself, so the password is never an
// argument; the SQL comes in as a positional parameter, never pasted.
// MYSQL_HOST and MYSQL_TCP_PORT, when the container sets them, pick the
// server.
const clientScript = `: "${MYSQL_PWD:=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}}"
user="${MARIADB_ROOT_USER:-${MYSQL_ROOT_USER:-root}}"
if [ -n "$MYSQL_PWD" ]; then export MYSQL_PWD; else unset MYSQL_PWD; fi
if command -v mariadb >/dev/null 2>&1; then client=mariadb; else client=mysql; fi
exec "$client" -u "$user" --connect-timeout=5 --batch "$@"`

// marker separates the result sets of one invocation.
const marker = "kubectl-sts:replica-status"

func statusSQL(replicaStatement string) string {
	return "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only', 'server_id', 'version', " +
		"'gtid_executed', 'gtid_mode', 'gtid_current_pos', 'gtid_slave_pos', 'gtid_binlog_pos', 'log_bin'); " +
		"SELECT '" + marker + "' AS marker; " + replicaStatement
}

func command(sql string) []string {
	return []string{"sh", "-c", clientScript, "mysql", "-e", sql}
}

// Engine is the MySQL/MariaDB engine.
type Engine struct{}

// New returns the engine.
func New() *Engine { return &Engine{} }

var _ plugins.Engine = (*Engine)(nil)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// LagUnits implements plugins.LagMeasurer: Seconds_Behind_Master: seconds only.
func (e *Engine) LagUnits() plugins.LagUnits { return plugins.LagUnits{Bytes: false, Seconds: true} }

// Aliases implements plugins.Aliased.
func (e *Engine) Aliases() []string { return []string{"mariadb", "percona"} }

// Matches implements plugins.Engine: mysql, mariadb, percona-server and
// percona-xtradb-cluster images (not Percona's MongoDB or PostgreSQL).
func (e *Engine) Matches(image string) bool {
	if plugins.MatchImage(image, "mongodb", "mongo", "postgresql", "postgres") {
		return false
	}
	return plugins.MatchImage(image, "mysql", "mariadb", "percona", "xtradb")
}

// Status is one server's answer: its variables and replica status rows.
type Status struct {
	Variables map[string]string
	// Replicas are the rows of SHOW REPLICA STATUS, column → value (NULL
	// as "NULL"); empty on a server that is not a replica.
	Replicas []map[string]string
}

// ParseStatus parses the batch output of statusSQL.
func ParseStatus(out string) (Status, error) {
	st := Status{Variables: map[string]string{}}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	i := 0
	if i < len(lines) && strings.HasPrefix(lines[i], "Variable_name\t") {
		i++
	}
	for ; i < len(lines); i++ {
		if lines[i] == "marker" && i+1 < len(lines) && lines[i+1] == marker {
			break
		}
		k, v, ok := strings.Cut(lines[i], "\t")
		if !ok {
			return st, fmt.Errorf("unexpected line in the variables: %q", lines[i])
		}
		st.Variables[k] = unescape(v)
	}
	if i >= len(lines) {
		return st, errors.New("incomplete output: the replica status is missing")
	}
	i += 2
	if i >= len(lines) {
		return st, nil
	}
	header := strings.Split(lines[i], "\t")
	for _, l := range lines[i+1:] {
		cells := strings.Split(l, "\t")
		if len(cells) != len(header) {
			return st, fmt.Errorf("replica status row has %d columns, header %d", len(cells), len(header))
		}
		row := map[string]string{}
		for j, h := range header {
			row[h] = unescape(cells[j])
		}
		st.Replicas = append(st.Replicas, row)
	}
	return st, nil
}

// unescape undoes the client's batch-mode escaping.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// col returns the first of the columns present: MySQL 8.0.22 renamed
// Slave/Master to Replica/Source; MariaDB kept the old names.
func col(row map[string]string, names ...string) string {
	for _, n := range names {
		if v, ok := row[n]; ok {
			return v
		}
	}
	return ""
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	return plugins.QueryPods(ctx, t, func(ctx context.Context, pod *corev1.Pod) (plugins.Member, error) {
		st, err := e.read(ctx, t, pod)
		if err != nil {
			return plugins.Member{}, err
		}
		return MemberFrom(st), nil
	})
}

func (e *Engine) read(ctx context.Context, t plugins.Target, pod *corev1.Pod) (Status, error) {
	container := t.ContainerFor(pod, e.Matches)
	out, err := t.Run(ctx, pod, container, "mysql", command(statusSQL("SHOW REPLICA STATUS")))
	var ce *plugins.CommandError
	if errors.As(err, &ce) && isSyntaxError(ce.Stderr) {
		out, err = t.Run(ctx, pod, container, "mysql", command(statusSQL("SHOW SLAVE STATUS")))
	}
	if err != nil {
		return Status{}, err
	}
	st, err := ParseStatus(string(out))
	if err != nil {
		return Status{}, fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	return st, nil
}

func isSyntaxError(stderr string) bool {
	return strings.Contains(stderr, "ERROR 1064") || strings.Contains(stderr, "syntax")
}

// MemberFrom maps a server's status to a member: a server with a
// configured source is a replica; one without is the primary when
// writable, else unknown (read-only and replicating from nobody).
func MemberFrom(st Status) plugins.Member {
	m := plugins.Member{Details: map[string]string{}}
	v := st.Variables
	for _, k := range []string{"version", "server_id", "read_only", "super_read_only"} {
		if v[k] != "" {
			m.Details[k] = v[k]
		}
	}
	if gtid := firstNonEmpty(v["gtid_executed"], v["gtid_current_pos"]); gtid != "" {
		m.Details["gtid"] = oneLine(gtid)
	}
	var row map[string]string
	for _, r := range st.Replicas {
		if col(r, "Source_Host", "Master_Host") != "" {
			row = r
			break
		}
	}
	if row == nil {
		if isOn(v["read_only"]) || isOn(v["super_read_only"]) {
			m.Role = plugins.RoleUnknown
			m.State = "read-only, not replicating"
		} else {
			m.Role = plugins.RolePrimary
			m.State = "read-write"
		}
		return m
	}
	m.Role = plugins.RoleReplica
	io := col(row, "Replica_IO_Running", "Slave_IO_Running")
	sql := col(row, "Replica_SQL_Running", "Slave_SQL_Running")
	m.State = io + "/" + sql
	if s := col(row, "Seconds_Behind_Source", "Seconds_Behind_Master"); s != "" && s != "NULL" {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			m.LagSeconds = plugins.Float64(n)
		}
	}
	m.Details["source"] = col(row, "Source_Host", "Master_Host") + ":" + col(row, "Source_Port", "Master_Port")
	set := func(k, val string) {
		if val != "" && val != "NULL" {
			m.Details[k] = oneLine(val)
		}
	}
	set("ioState", col(row, "Replica_IO_State", "Slave_IO_State"))
	set("sqlState", col(row, "Replica_SQL_Running_State", "Slave_SQL_Running_State"))
	set("lastIOError", col(row, "Last_IO_Error"))
	set("lastSQLError", col(row, "Last_SQL_Error"))
	set("sourceLog", col(row, "Source_Log_File", "Master_Log_File")+":"+col(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos"))
	set("executedLog", col(row, "Relay_Source_Log_File", "Relay_Master_Log_File")+":"+col(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos"))
	if gtid := firstNonEmpty(col(row, "Executed_Gtid_Set"), v["gtid_slave_pos"], col(row, "Gtid_IO_Pos")); gtid != "" {
		m.Details["gtid"] = oneLine(gtid)
	}
	if !isOn(v["read_only"]) && !isOn(v["super_read_only"]) {
		m.Details["warning"] = "replica is writable (read_only is OFF)"
	}
	return m
}

// Healthy implements plugins.Engine: every member answered, exactly one
// primary, both replication threads running on every replica, and the lag
// (seconds behind the source) within the bound. MySQL has no byte lag, so
// a byte bound cannot be met.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if r := plugins.ReplicationReason(members); r != "" {
		return false, r
	}
	var problems plugins.Problems
	problems.AddReplicas(members, opts, neitherRole, threadsStopped)
	return problems.Verdict()
}

func neitherRole(m plugins.Member) string { return fmt.Sprintf("%s is %s", m.Pod, m.State) }

// threadsStopped says which replication thread of replica m is not
// running, with its last error; "" when both run.
func threadsStopped(m plugins.Member) string {
	if m.State == "Yes/Yes" {
		return ""
	}
	why := fmt.Sprintf("%s replication threads IO/SQL are %s", m.Pod, m.State)
	if errText := firstNonEmpty(m.Details["lastIOError"], m.Details["lastSQLError"]); errText != "" {
		why += " (" + errText + ")"
	}
	return why
}

// BeforeRemove implements plugins.Engine: it refuses to remove the
// primary. MySQL keeps no per-replica state on the source, so there is
// nothing else to do.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	members, err := e.Members(ctx, t)
	if err != nil {
		return err
	}
	if err := plugins.RefusePrimary(members, ordinal); err != nil {
		return err
	}
	if m, ok := plugins.FindMember(members, ordinal); ok {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: m.Pod,
			Message: plugins.NotPrimaryMessage(members, ordinal)})
	}
	return nil
}

// AfterRemove implements plugins.Engine: nothing to clean up.
func (e *Engine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}

func isOn(v string) bool { return v == "ON" || v == "1" }

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" && v != "NULL" {
			return v
		}
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
