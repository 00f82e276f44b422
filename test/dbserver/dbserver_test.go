package dbserver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/etcd"
	"github.com/kubectl-sts/kubectl-sts/plugins/zookeeper"
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
	var got string
	err := waitUntil(30*time.Second, func() error {
		var err error
		got, err = r.QueryErr("SELECT v FROM d.marker")
		return err
	})
	if err != nil || strings.TrimSpace(got) != "42" {
		t.Fatalf("replica read %q, %v; want 42", got, err)
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

func TestEtcdClusterRemovesAMemberThroughTheEngine(t *testing.T) {
	c := StartEtcd(t, "etcd-0", "etcd-1", "etcd-2")
	t.Setenv("PATH", c.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := c.MoveLeader(c.Members[2]); err != nil {
		t.Fatal(err)
	}
	ex := &LocalExec{Env: map[string]map[string]string{}}
	for _, m := range c.Members {
		ex.Env[m.Name] = c.Env(m)
	}
	tg := localTarget(ex, "etcd", 3)
	e := etcd.New()
	ms, err := e.Members(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := e.Healthy(ms, plugins.HealthOptions{}); !ok {
		t.Fatalf("healthy cluster judged unhealthy: %s", why)
	}
	if ms[2].Role != plugins.RolePrimary {
		t.Fatalf("etcd-2 should lead: %+v", ms)
	}
	var events []string
	opts := plugins.RemoveOptions{Wait: time.Minute, Events: func(ev plugins.RemoveEvent) { events = append(events, string(ev.Action)+": "+ev.Message) }}
	if err := e.BeforeRemove(context.Background(), tg, 2, opts); err != nil {
		t.Fatalf("removing etcd-2: %v\n%s", err, strings.Join(events, "\n"))
	}
	t.Logf("events:\n%s", strings.Join(events, "\n"))
	names, err := c.MemberNames(c.Members[0])
	if err != nil {
		t.Fatal(err)
	}
	assert.ElementsMatch(t, []string{"etcd-0", "etcd-1"}, names)
	if _, err := c.Status(c.Members[0], c.Members[1]); err != nil {
		t.Fatalf("the members that stay lost their leader: %v", err)
	}
	assert.Eventually(t, c.Members[2].Exited, 30*time.Second, 100*time.Millisecond, "a removed member stops by itself")
}

// localTarget is n pods name-0.. of a StatefulSet name, run through ex.
func localTarget(ex *LocalExec, name string, n int) plugins.Target {
	t := plugins.Target{StatefulSet: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, Exec: ex, Timeout: 30 * time.Second}
	for i := 0; i < n; i++ {
		t.Pods = append(t.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: "ns"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		})
	}
	return t
}

func TestZooKeeperEnsembleThroughTheEngine(t *testing.T) {
	start := time.Now()
	z := StartZooKeeper(t, ZooKeeperOptions{Participants: 5, Reconfig: true})
	t.Logf("five servers up in %s", time.Since(start).Round(time.Millisecond))
	ex := &LocalExec{Env: map[string]map[string]string{}}
	for i, s := range z.Servers {
		ex.Env[fmt.Sprintf("zk-%d", i)] = z.Env(s)
	}
	tg := localTarget(ex, "zk", 5)
	e := zookeeper.New()
	ms, err := e.Members(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := e.Healthy(ms, plugins.HealthOptions{}); !ok {
		t.Fatalf("healthy ensemble judged unhealthy: %s", why)
	}
	m, err := e.Membership(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	assert.Len(t, m.Voters, 5)
	assert.Empty(t, m.Static)
	var events []string
	opts := plugins.RemoveOptions{Wait: time.Minute, Events: func(ev plugins.RemoveEvent) { events = append(events, string(ev.Action)+": "+ev.Message) }}
	if err := e.BeforeRemove(context.Background(), tg, 4, opts); err != nil {
		t.Fatalf("removing zk-4: %v\n%s", err, strings.Join(events, "\n"))
	}
	t.Logf("events:\n%s", strings.Join(events, "\n"))
	got, err := z.Servers[0].Membership()
	if err != nil {
		t.Fatal(err)
	}
	assert.Equal(t, []string{"server.1", "server.2", "server.3", "server.4"}, got)
	tg4 := localTarget(ex, "zk", 4)
	if err := e.BeforeRemove(context.Background(), tg4, 3, opts); err != nil {
		t.Fatalf("removing zk-3: %v\n%s", err, strings.Join(events, "\n"))
	}
	t.Logf("events:\n%s", strings.Join(events, "\n"))
	for _, srv := range z.Servers[:3] {
		got, err := srv.Membership()
		if err != nil {
			t.Fatal(err)
		}
		assert.Equal(t, []string{"server.1", "server.2", "server.3"}, got, "server.%d", srv.ID)
	}
}
