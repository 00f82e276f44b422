package dbserver

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const mariadbPackage = "mariadb-server"

// MariaDBOptions configure a MariaDB server.
type MariaDBOptions struct {
	// Password of root@127.0.0.1, the account clients use; required.
	Password string
}

// MariaDB is a running MariaDB server, reachable on Host:Port as root
// with Password.
type MariaDB struct {
	Host     string
	Port     int
	User     string
	Password string
	DataDir  string
	ServerID int
	// Primary is the server this one replicates from, nil for a primary.
	Primary *MariaDB

	daemon, client string
	user           *serviceUser
	socket         string
	logFile        string
	replPassword   string
	// replicas counts the replicas started, for their server ids.
	replicas int

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// StartMariaDB initialises and starts a primary with binary logging and
// GTIDs, stopped when t ends.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	if opts.Password == "" {
		t.Fatal("dbserver: MariaDBOptions.Password is required")
	}
	m := newMariaDB(t, opts.Password, 1)
	m.start(t, true)
	// Accounts are made outside the binary log, so a replica that replays
	// the log from its start does not trip over them.
	m.socketQuery(t, fmt.Sprintf(`SET sql_log_bin = 0;
CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY %[1]s;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE OR REPLACE USER 'repl'@'127.0.0.1' IDENTIFIED BY %[2]s;
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';`, sqlString(opts.Password), sqlString(m.replPassword)))
	return m
}

// StartReplica starts a read-only replica of m that replicates from the
// start of m's binary log with GTIDs, and returns once both replication
// threads run.
func (m *MariaDB) StartReplica(t testing.TB) *MariaDB {
	t.Helper()
	m.replicas++
	r := newMariaDB(t, m.Password, m.ServerID+m.replicas)
	r.Primary = m
	r.start(t, false)
	r.socketQuery(t, fmt.Sprintf(`SET sql_log_bin = 0;
CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY %[1]s;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %[2]d, MASTER_USER = 'repl',
  MASTER_PASSWORD = %[3]s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
START SLAVE;`, sqlString(m.Password), m.Port, sqlString(m.replPassword)))
	if err := r.waitReplicating(); err != nil {
		t.Fatalf("dbserver: MariaDB replica on port %d does not replicate from %d: %v\n%s", r.Port, m.Port, err, tail(r.logFile, 20))
	}
	return r
}

// waitReplicating returns once both replication threads of a replica run,
// or the last status it saw when startTimeout has passed.
func (m *MariaDB) waitReplicating() error {
	return waitShows(func() (string, error) { return m.socketQueryErr("SHOW SLAVE STATUS", "-E") },
		"replica threads not running", "Slave_IO_Running: Yes", "Slave_SQL_Running: Yes")
}

func newMariaDB(t testing.TB, password string, serverID int) *MariaDB {
	t.Helper()
	daemon := findBinary(t, mariadbPackage, "/usr/sbin/mariadbd", "mariadbd", "/usr/sbin/mysqld", "mysqld")
	client := findBinary(t, "mariadb-client", "mariadb", "mysql")
	installDB := findBinary(t, mariadbPackage, "mariadb-install-db", "mysql_install_db")
	u := lookupServiceUser(t, "mysql", mariadbPackage)
	dir := serverDir(t, "mariadb", u)
	m := &MariaDB{
		Host: "127.0.0.1", User: "root", Password: password, ServerID: serverID,
		DataDir: filepath.Join(dir, "data"), daemon: daemon, client: client, user: u,
		socket: filepath.Join(dir, "mysqld.sock"), logFile: filepath.Join(dir, "error.log"),
		replPassword: "repl-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	args := []string{installDB, "--no-defaults", "--datadir=" + m.DataDir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--innodb-buffer-pool-size=16M"}
	if u != nil {
		args = append(args, "--user="+u.name)
	}
	mustRun(t, nil, args...)
	return m
}

// start runs mariadbd in the foreground of a child process and waits
// until it answers on its socket.
func (m *MariaDB) start(t testing.TB, binlog bool) {
	t.Helper()
	m.startOn(t, binlog, 0)
	t.Cleanup(func() { m.Stop(t) })
}

// startOn starts the server on port, or on a free port when port is 0.
// The caller arranges the stop: Stop ends whichever process runs.
func (m *MariaDB) startOn(t testing.TB, binlog bool, port int) {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		m.Port = port
		if port == 0 {
			m.Port = freePort(t)
		}
		args := []string{m.daemon, "--no-defaults", "--datadir=" + m.DataDir, "--port=" + strconv.Itoa(m.Port),
			"--bind-address=127.0.0.1", "--socket=" + m.socket, "--pid-file=" + filepath.Join(filepath.Dir(m.DataDir), "mysqld.pid"),
			"--log-error=" + m.logFile, "--server-id=" + strconv.Itoa(m.ServerID), "--skip-name-resolve",
			"--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0", "--skip-innodb-doublewrite",
			"--performance-schema=OFF", "--gtid-strict-mode=ON", "--relay-log=relay-bin"}
		if binlog {
			args = append(args, "--log-bin=mysql-bin", "--binlog-format=ROW")
		} else {
			args = append(args, "--read-only=ON")
		}
		if m.user != nil {
			args = append(args, "--user="+m.user.name)
		}
		cmd := exec.Command(args[0], args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("dbserver: starting mariadbd: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		m.cmd, m.exited = cmd, exited
		lastErr = waitUntil(startTimeout, func() error {
			select {
			case <-exited:
				return nil
			default:
			}
			_, err := m.socketQueryErr("SELECT 1")
			return err
		})
		select {
		case <-exited:
			lastErr = fmt.Errorf("mariadbd exited")
			continue
		default:
		}
		if lastErr == nil {
			return
		}
		m.kill()
	}
	t.Fatalf("dbserver: starting MariaDB in %s: %v\n%s", m.DataDir, lastErr, tail(m.logFile, 20))
}

func (m *MariaDB) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// Stop shuts the server down; it is safe to call again.
func (m *MariaDB) Stop(t testing.TB) {
	t.Helper()
	m.stopOnce.Do(func() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(time.Minute):
			t.Errorf("dbserver: MariaDB on port %d did not stop within a minute; killing it", m.Port)
			m.kill()
		}
	})
}

// Restart stops the server and starts it again on the same port; a
// replica's threads start with it, and it is waited for until both run.
func (m *MariaDB) Restart(t testing.TB) {
	t.Helper()
	m.Stop(t)
	m.stopOnce = sync.Once{}
	m.startOn(t, m.Primary == nil, m.Port)
	if m.Primary == nil {
		return
	}
	if err := m.waitReplicating(); err != nil {
		t.Fatalf("dbserver: restarted MariaDB replica on port %d does not replicate: %v\n%s", m.Port, err, tail(m.logFile, 20))
	}
}

// Env is the environment that points the mysql/mariadb client at this
// server over TCP, without the password.
func (m *MariaDB) Env() map[string]string {
	return map[string]string{
		"MYSQL_HOST":     m.Host,
		"MYSQL_TCP_PORT": strconv.Itoa(m.Port),
	}
}

// QueryErr runs sql over TCP as root and returns the batch output
// (tab-separated, no column names).
func (m *MariaDB) QueryErr(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return run(ctx, []string{"MYSQL_PWD=" + m.Password}, m.client, "--no-defaults", "-h", m.Host, "-P", strconv.Itoa(m.Port),
		"-u", m.User, "-B", "-N", "-e", sql)
}

// Query is QueryErr that fails the test on error.
func (m *MariaDB) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.QueryErr(sql)
	if err != nil {
		t.Fatalf("dbserver: on MariaDB port %d: %v", m.Port, err)
	}
	return strings.TrimSpace(out)
}

func (m *MariaDB) socketQueryErr(sql string, flags ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(flags) == 0 {
		flags = []string{"-B", "-N"}
	}
	args := append([]string{m.client, "--no-defaults", "-S", m.socket, "-u", "root"}, flags...)
	return run(ctx, nil, append(args, "-e", sql)...)
}

func (m *MariaDB) socketQuery(t testing.TB, sql string) {
	t.Helper()
	if out, err := m.socketQueryErr(sql); err != nil {
		t.Fatalf("dbserver: on MariaDB port %d: %v\n%s", m.Port, err, out)
	}
}

// sqlString quotes s as a MariaDB string literal (backslashes escape).
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}
