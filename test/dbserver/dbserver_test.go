package dbserver

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPostgresReplicaStreamsThroughSlot(t *testing.T) {
	p := StartPostgres(t, PostgresOptions{Password: "s3cret"})
	r := p.StartReplica(t, "replica_1")
	if got := p.Query(t, "SELECT active FROM pg_replication_slots WHERE slot_name = 'replica_1'"); got != "t" {
		t.Fatalf("slot replica_1 active = %q, want t", got)
	}
	if got := r.Query(t, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("replica pg_is_in_recovery = %q", got)
	}
	p.Query(t, "CREATE TABLE marker AS SELECT 42 AS v")
	err := waitUntil(30*time.Second, func() error {
		_, err := r.QueryErr("SELECT v FROM marker")
		return err
	})
	if err != nil {
		t.Fatalf("write on the primary never reached the replica: %v", err)
	}
	r.Stop(t)
	err = waitUntil(30*time.Second, func() error {
		if got := p.Query(t, "SELECT active FROM pg_replication_slots WHERE slot_name = 'replica_1'"); got != "f" {
			return errString("slot still active")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMariaDBReplicaReplicates(t *testing.T) {
	m := StartMariaDB(t, MariaDBOptions{Password: "s3cret"})
	r := m.StartReplica(t)
	m.Query(t, "CREATE DATABASE d; CREATE TABLE d.marker (v INT); INSERT INTO d.marker VALUES (42)")
	// Wait for the row, not for the query to stop failing: the table
	// reaches the replica before the row does.
	err := waitUntil(30*time.Second, func() error {
		got, err := r.QueryErr("SELECT v FROM d.marker")
		if err != nil {
			return err
		}
		if v := strings.TrimSpace(got); v != "42" {
			return errString("replica SELECT v FROM d.marker = " + strconv.Quote(v) + ", want 42")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ro := r.Query(t, "SELECT @@read_only"); ro != "1" {
		t.Errorf("replica read_only = %s, want 1", ro)
	}
}

func TestRedisReplicaReplicates(t *testing.T) {
	p := StartRedis(t, RedisOptions{Password: "s3cret"})
	r := p.StartReplica(t)
	p.Do(t, "SET", "marker", "42")
	err := waitUntil(30*time.Second, func() error {
		if v := r.Do(t, "GET", "marker"); v != "42" {
			return errString("replica GET marker = " + v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Do(t, "INFO", "replication"), "role:slave") {
		t.Error("replica does not report role:slave")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// fatalRecorder keeps the message of Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestMissingServerNamesThePackage(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	got := findBinary(rec, "postgresql", "/nonexistent/*/bin/postgres", "kubectl-sts-no-such-binary")
	assert.Empty(t, got)
	assert.Contains(t, rec.msg, "install the Debian package postgresql")
	assert.Contains(t, rec.msg, "hack/install-deps.sh")
}
