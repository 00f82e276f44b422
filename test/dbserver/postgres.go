package dbserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const postgresPackage = "postgresql"

// PostgresOptions configure a PostgreSQL server.
type PostgresOptions struct {
	// Password of the superuser "postgres"; empty means trust
	// authentication on the loopback interface.
	Password string
	// Settings are extra postgresql.conf parameters.
	Settings map[string]string
}

// Postgres is a running PostgreSQL server, reachable on Host:Port.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
	DataDir  string
	// Primary is the server this one replicates from, nil for a primary.
	Primary *Postgres

	bin     string
	user    *serviceUser
	logFile string

	stopOnce sync.Once
}

// StartPostgres initialises and starts a primary, stopped when t ends.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	bin := postgresBinDir(t)
	u := lookupServiceUser(t, "postgres", postgresPackage)
	dir := serverDir(t, "pg", u)
	p := &Postgres{
		Host: "127.0.0.1", User: "postgres", Password: opts.Password,
		DataDir: filepath.Join(dir, "data"), bin: bin, user: u, logFile: filepath.Join(dir, "server.log"),
	}
	args := []string{filepath.Join(bin, "initdb"), "-D", p.DataDir, "-U", p.User, "--no-sync", "--encoding=UTF8", "--locale=C"}
	if opts.Password != "" {
		pwfile := filepath.Join(dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(opts.Password+"\n"), 0o600); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
		if u != nil {
			if err := os.Chown(pwfile, u.uid, u.gid); err != nil {
				t.Fatalf("dbserver: %v", err)
			}
		}
		args = append(args, "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwfile)
		defer os.Remove(pwfile)
	} else {
		args = append(args, "--auth=trust")
	}
	mustRun(t, nil, u.wrap(args)...)
	settings := map[string]string{
		"listen_addresses":             "'127.0.0.1'",
		"unix_socket_directories":      "''",
		"fsync":                        "off",
		"synchronous_commit":           "off",
		"full_page_writes":             "off",
		"wal_level":                    "replica",
		"max_wal_senders":              "10",
		"max_replication_slots":        "10",
		"wal_sender_timeout":           "10s",
		"wal_receiver_status_interval": "1s",
		"shared_buffers":               "32MB",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	p.appendConf(t, settings)
	p.start(t)
	return p
}

// StartReplica takes a base backup of p with pg_basebackup -R -C -S slot
// (which creates the physical slot on p) and starts it as a streaming
// replica; it returns once the replica streams.
func (p *Postgres) StartReplica(t testing.TB, slot string) *Postgres {
	t.Helper()
	dir := serverDir(t, "pg-replica", p.user)
	r := &Postgres{
		Host: p.Host, User: p.User, Password: p.Password, Primary: p,
		DataDir: filepath.Join(dir, "data"), bin: p.bin, user: p.user, logFile: filepath.Join(dir, "server.log"),
	}
	args := []string{filepath.Join(p.bin, "pg_basebackup"), "-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User,
		"-D", r.DataDir, "-R", "-X", "stream", "--no-sync", "-c", "fast"}
	if slot != "" {
		args = append(args, "-C", "-S", slot)
	}
	mustRun(t, p.passwordEnv(), p.user.wrap(args)...)
	r.start(t)
	r.waitStreaming(t)
	return r
}

func (p *Postgres) appendConf(t testing.TB, settings map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# dbserver\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(p.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatalf("dbserver: %v", err)
	}
}

// start picks a free port and starts the server, retrying with another
// port if one was taken in between.
func (p *Postgres) start(t testing.TB) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		p.Port = freePort(t)
		p.appendConf(t, map[string]string{"port": strconv.Itoa(p.Port)})
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		_, err = run(ctx, nil, p.user.wrap([]string{filepath.Join(p.bin, "pg_ctl"), "-D", p.DataDir, "-l", p.logFile, "-w", "-t", "90", "start"})...)
		cancel()
		if err == nil {
			t.Cleanup(func() { p.Stop(t) })
			return
		}
	}
	t.Fatalf("dbserver: starting PostgreSQL in %s: %v\n%s", p.DataDir, err, tail(p.logFile, 20))
}

// Stop stops the server (fast shutdown); it is safe to call again.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := run(ctx, nil, p.user.wrap([]string{filepath.Join(p.bin, "pg_ctl"), "-D", p.DataDir, "-m", "fast", "-w", "stop"})...); err != nil {
			t.Errorf("dbserver: stopping PostgreSQL on port %d: %v", p.Port, err)
		}
	})
}

// Restart stops the server (fast shutdown) and starts it again on the
// same port; a replica is waited for until it streams again.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := run(ctx, nil, p.user.wrap([]string{filepath.Join(p.bin, "pg_ctl"), "-D", p.DataDir, "-l", p.logFile, "-m", "fast", "-w", "-t", "90", "restart"})...); err != nil {
		t.Fatalf("dbserver: restarting PostgreSQL on port %d: %v\n%s", p.Port, err, tail(p.logFile, 20))
	}
	if p.Primary != nil {
		p.waitStreaming(t)
	}
}

// waitStreaming waits until the replica's WAL receiver streams.
func (p *Postgres) waitStreaming(t testing.TB) {
	t.Helper()
	err := waitUntil(startTimeout, func() error {
		out, err := p.QueryErr("SELECT status FROM pg_stat_wal_receiver")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "streaming" {
			return fmt.Errorf("wal receiver status %q", strings.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dbserver: replica on port %d does not stream from %d: %v\n%s", p.Port, p.Primary.Port, err, tail(p.logFile, 20))
	}
}

// Env is the libpq environment that points psql at this server, without
// the password.
func (p *Postgres) Env() map[string]string {
	return map[string]string{
		"PGHOST":     p.Host,
		"PGPORT":     strconv.Itoa(p.Port),
		"PGUSER":     p.User,
		"PGDATABASE": "postgres",
	}
}

func (p *Postgres) passwordEnv() []string {
	env := envList(p.Env())
	if p.Password != "" {
		env = append(env, "PGPASSWORD="+p.Password)
	}
	return env
}

// QueryErr runs sql with psql and returns the unaligned, tuples-only output.
func (p *Postgres) QueryErr(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	psql := filepath.Join(p.bin, "psql")
	return run(ctx, p.passwordEnv(), psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
}

// Query is QueryErr that fails the test on error.
func (p *Postgres) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := p.QueryErr(sql)
	if err != nil {
		t.Fatalf("dbserver: on PostgreSQL port %d: %v", p.Port, err)
	}
	return strings.TrimSpace(out)
}

// PsqlPath is the psql of the server's version.
func (p *Postgres) PsqlPath() string { return filepath.Join(p.bin, "psql") }

// postgresBinDir finds the server binaries: Debian installs them under
// /usr/lib/postgresql/<version>/bin, outside PATH.
func postgresBinDir(t testing.TB) string {
	t.Helper()
	return filepath.Dir(findBinary(t, postgresPackage, "/usr/lib/postgresql/*/bin/postgres", "postgres"))
}
