package engines

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
)

// The shared engine contract: one table of cases, run in order against
// each engine's real servers (a primary on pod 0, replicas on pods 1 and
// 2) through the real exec path. Each case leaves the replica set as the
// next one expects, so one set per engine serves the whole table:
// healthy cases first, then replica 1's replication is broken (and a
// rollout on the broken set rolls back), replica 2 is stopped, and
// finally replica 2 is removed.
//
// An engine that cannot have a case says so in its adapter's notApplicable,
// with the reason; the case is then reported as skipped with that reason,
// never passed silently.

// contractAdapter drives one engine's real servers.
type contractAdapter interface {
	// start brings up the servers and the StatefulSet; the engine is
	// detected from its image, as --engine auto does.
	start(t *testing.T) *bed
	// secret is the password the engine must never print.
	secret() string
	// quiesce returns once the primary has written its last record of
	// a write burst (PostgreSQL logs a standby snapshot up to 15s later).
	quiesce(t *testing.T)
	// load writes to the primary, in a way the replica cannot keep up
	// with at once, until stop is closed.
	load(t *testing.T, stop <-chan struct{})
	restartReplica(t *testing.T, i int)
	stopReplica(t *testing.T, i int)
	// breakReplica takes replica i's replication link down, its server up.
	breakReplica(t *testing.T, i int)
	// pauseReplay pauses replica i's replay and returns how to resume it.
	pauseReplay(t *testing.T, i int) (resume func())
	// notApplicable names the cases the engine cannot have, with why.
	notApplicable() map[string]string
	// checkRoles, checkRestarted and checkRemoved add what only this
	// engine shows (slots, positions).
	checkRoles(t *testing.T, ms []plugins.Member)
	checkRestarted(t *testing.T, replica plugins.Member)
	checkBroken(t *testing.T, replica plugins.Member)
	checkRemoved(t *testing.T)
}

// contract is one engine's replica set under test.
type contract struct {
	*bed
	adapter contractAdapter
	engine  plugins.Engine
	name    string
}

func (c *contract) pod(i int) string { return fmt.Sprintf("%s-%d", c.name, i) }

// read returns the members, logging them.
func (c *contract) read(t *testing.T) []plugins.Member {
	t.Helper()
	ms := members(t, c.engine, c.target())
	mustNotLeak(t, c.adapter.secret(), ms)
	return ms
}

// lagZero reports whether m's lag is known and zero in every unit the
// engine measures.
func (c *contract) lagZero(m plugins.Member) bool {
	u := unitsOf(c.engine)
	if u.Bytes && (m.LagBytes == nil || *m.LagBytes != 0) {
		return false
	}
	if u.Seconds && (m.LagSeconds == nil || *m.LagSeconds != 0) {
		return false
	}
	return true
}

func lagPositive(m plugins.Member) bool {
	return m.LagBytes != nil && *m.LagBytes > 0 || m.LagSeconds != nil && *m.LagSeconds > 0
}

// eventually reads the members until ok holds or waitTimeout passes, and
// returns the last read.
func (c *contract) eventually(t *testing.T, what string, ok func([]plugins.Member) bool) []plugins.Member {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ms := c.read(t)
		if ok(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *contract) replicasCaughtUp(ms []plugins.Member) bool {
	n := 0
	for _, m := range ms {
		if m.Role == plugins.RoleReplica && c.lagZero(m) {
			n++
		}
	}
	return n == 2
}

// gate waits on the engine's health gate for at most d.
func (c *contract) gate(opts plugins.HealthOptions, d time.Duration) error {
	gate := plugins.HealthGate(c.engine, c.target(), opts, 500*time.Millisecond)
	return wait.WaitGates(context.Background(), c.tracker, d, gate)
}

var contractCases = []struct {
	name string
	run  func(t *testing.T, c *contract)
}{
	{"primary and replicas identified", func(t *testing.T, c *contract) {
		ms := c.read(t)
		require.Len(t, ms, 3)
		assert.Equal(t, plugins.RolePrimary, ms[0].Role)
		assert.Equal(t, plugins.RoleReplica, ms[1].Role)
		assert.Equal(t, plugins.RoleReplica, ms[2].Role)
		for _, m := range ms {
			assert.Empty(t, m.Error, m.Pod)
		}
		ok, reason := c.engine.Healthy(ms, plugins.HealthOptions{})
		assert.True(t, ok, reason)
		c.adapter.checkRoles(t, ms)
	}},
	{"lag zero when idle", func(t *testing.T, c *contract) {
		c.eventually(t, "both replicas caught up", c.replicasCaughtUp)
	}},
	{"lag zero after a replica restart", func(t *testing.T, c *contract) {
		c.adapter.quiesce(t)
		c.adapter.restartReplica(t, 1)
		ms := c.eventually(t, "the restarted replica caught up", c.replicasCaughtUp)
		c.adapter.checkRestarted(t, ms[1])
		// Idle for longer than a bound of 2s: the age of its last
		// replayed write exceeds it, its lag must not.
		time.Sleep(3 * time.Second)
		ms = c.read(t)
		assert.True(t, c.lagZero(ms[1]), "still caught up on an idle primary")
		opts := plugins.HealthOptions{}
		if unitsOf(c.engine).Seconds {
			opts.MaxLagSeconds = 2
		} else {
			opts.MaxLagBytes = 1
		}
		require.NoError(t, c.gate(opts, 10*time.Second))
	}},
	{"lag non-zero under write load", func(t *testing.T, c *contract) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); c.adapter.load(t, stop) }()
		c.eventually(t, "a replica behind under load", func(ms []plugins.Member) bool {
			return lagPositive(ms[1]) || lagPositive(ms[2])
		})
		close(stop)
		wg.Wait()
		c.eventually(t, "both replicas caught up after the load", c.replicasCaughtUp)
	}},
	{"replay paused", func(t *testing.T, c *contract) {
		resume := c.adapter.pauseReplay(t, 1)
		c.adapter.load(t, closedChannel())
		var r status.Report
		deadline := time.Now().Add(waitTimeout)
		for {
			r, _ = statusReport(t, c.ns, c.name)
			if r.Verdict.Has(status.CodeReplayPaused) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		got := reasonsByObject(r)
		require.Contains(t, got, "ReplayPaused pod/"+c.pod(1))
		assert.Equal(t, status.SeverityWarning, got["ReplayPaused pod/"+c.pod(1)].Severity)
		assert.Equal(t, status.StateNeedsAttention, r.Verdict.State)
		resume()
		c.eventually(t, "replay resumed and caught up", c.replicasCaughtUp)
	}},
	{"gate passes on a healthy set", func(t *testing.T, c *contract) {
		opts := plugins.HealthOptions{}
		if unitsOf(c.engine).Seconds {
			opts.MaxLagSeconds = 30
		} else {
			opts.MaxLagBytes = 1 << 20
		}
		require.NoError(t, c.gate(opts, waitTimeout))
		r, code := statusReport(t, c.ns, c.name)
		assert.Equal(t, status.StateHealthy, r.Verdict.State)
		assert.Equal(t, cmdutil.ExitOK, code)
	}},
	{"replication broken", func(t *testing.T, c *contract) {
		c.adapter.breakReplica(t, 1)
		var r status.Report
		var code int
		deadline := time.Now().Add(waitTimeout)
		for {
			r, code = statusReport(t, c.ns, c.name)
			if r.Verdict.Has(status.CodeReplicationBroken) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		got := reasonsByObject(r)
		require.Contains(t, got, "ReplicationBroken pod/"+c.pod(1))
		assert.Equal(t, status.SeverityError, got["ReplicationBroken pod/"+c.pod(1)].Severity)
		assert.Equal(t, status.StateDegraded, r.Verdict.State)
		assert.Equal(t, cmdutil.ExitDegraded, code)
		assert.NotContains(t, fmt.Sprint(r.Verdict.Reasons), c.adapter.secret())
		c.adapter.checkBroken(t, c.read(t)[1])

		err := c.gate(plugins.HealthOptions{}, 3*time.Second)
		var timeout *wait.TimeoutError
		require.True(t, errors.As(err, &timeout), "the gate fails on a broken set: %v", err)
		assert.Contains(t, err.Error(), c.pod(1))
	}},
	{"rollout rolls back on a broken set", func(t *testing.T, c *contract) {
		// With replica 1 broken, a forced staged rollout updates the top
		// pod, its engine gate fails, and it rolls back.
		image := c.sts.Spec.Template.Spec.Containers[1].Image
		stdout, stderr, code := runCommand(t, c.ns, "rollout", c.name, "--staged", "--image", "db="+image+"-next",
			"--steps", "1,100%", "--step-timeout", "5s", "--force", "--yes")
		assert.Equal(t, cmdutil.ExitRolledBack, code)
		assert.Contains(t, stdout+stderr, c.pod(1))
		require.NoError(t, wait.WaitGates(context.Background(), c.tracker, waitTimeout, wait.StatefulSetReady(c.name)))
		sts := c.tracker.Snapshot().StatefulSet
		assert.Equal(t, image, sts.Spec.Template.Spec.Containers[1].Image, "rolled back to the previous template")
	}},
	{"replica stopped", func(t *testing.T, c *contract) {
		c.adapter.stopReplica(t, 2)
		ms := c.read(t)
		assert.Equal(t, plugins.RoleUnknown, ms[2].Role)
		assert.Contains(t, ms[2].Error, " in pod "+c.pod(2)+" exited with code ")
		ok, reason := c.engine.Healthy(ms, plugins.HealthOptions{})
		assert.False(t, ok)
		assert.Contains(t, reason, "no answer from "+c.pod(2))
		err := c.gate(plugins.HealthOptions{}, 3*time.Second)
		var timeout *wait.TimeoutError
		require.True(t, errors.As(err, &timeout), "the gate holds: %v", err)
		assert.Contains(t, err.Error(), "no answer from "+c.pod(2))
	}},
	{"scale-down removal steps", func(t *testing.T, c *contract) {
		ctx := context.Background()
		got, record := events(t)
		opts := plugins.RemoveOptions{Wait: time.Minute, Events: record}
		assert.ErrorContains(t, c.engine.BeforeRemove(ctx, c.target(), 0, opts), "pod "+c.pod(0)+" is the primary")
		require.NoError(t, c.engine.BeforeRemove(ctx, c.target(), 2, opts))
		c.scaleTo(2)
		require.NoError(t, c.engine.AfterRemove(ctx, c.target(), 2, opts))
		require.NoError(t, c.engine.AfterRemove(ctx, c.target(), 2, opts), "running it again is not an error")
		mustNotLeak(t, c.adapter.secret(), *got)
		c.adapter.checkRemoved(t)
	}},
}

func closedChannel() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func runContract(t *testing.T, name string, a contractAdapter) {
	b := a.start(t)
	e, err := all.New().Detect(b.tracker.Snapshot().StatefulSet, "")
	require.NoError(t, err)
	require.NotNil(t, e, "engine not detected from the image")
	c := &contract{bed: b, adapter: a, engine: e, name: b.sts.Name}
	t.Logf("%s engine %s on statefulset %s", name, e.Name(), c.name)
	na := a.notApplicable()
	for _, cs := range contractCases {
		if !t.Run(cs.name, func(t *testing.T) {
			if why, ok := na[cs.name]; ok {
				t.Skipf("not applicable to %s: %s", name, why)
			}
			cs.run(t, c)
		}) {
			// The cases build on each other: stop at the first failure.
			t.FailNow()
		}
	}
	for n := range na {
		found := false
		for _, cs := range contractCases {
			found = found || cs.name == n
		}
		assert.True(t, found, "notApplicable names an unknown case %q", n)
	}
}

// server is what an adapter needs of one of the dbserver servers: its
// client environment, and a restart and a stop.
type server interface {
	Env() map[string]string
	Restart(t testing.TB)
	Stop(t testing.TB)
}

// replicaSet is the servers of an adapter: a primary for pod 0 and
// replicas for pods 1 and 2.
type replicaSet[S server] struct {
	primary  S
	replicas [3]S
}

func (a *replicaSet[S]) restartReplica(t *testing.T, i int) { a.replicas[i].Restart(t) }
func (a *replicaSet[S]) stopReplica(t *testing.T, i int)    { a.replicas[i].Stop(t) }

// bed makes the StatefulSet name, of image, whose pods reach the servers
// through the environment env gives each.
func (a *replicaSet[S]) bed(t *testing.T, name, image string, env func(S) map[string]string) *bed {
	return newBed(t, name, image, []map[string]string{env(a.primary), env(a.replicas[1]), env(a.replicas[2])})
}

// withPassword is s's client environment with the password the image
// reads from variable.
func withPassword(s server, variable, password string) map[string]string {
	env := s.Env()
	env[variable] = password
	return env
}

// appliedAsItArrives is the part of an adapter whose engine applies the
// replication stream as it arrives: nothing to quiesce, no replay to pause
// (the case is not applicable), and nothing kept on the primary for a
// removed member.
type appliedAsItArrives struct{}

func (appliedAsItArrives) quiesce(*testing.T)                 {}
func (appliedAsItArrives) pauseReplay(*testing.T, int) func() { return func() {} }
func (appliedAsItArrives) checkRemoved(*testing.T)            {}

func TestEngineContractPostgres(t *testing.T) { runContract(t, "PostgreSQL", &pgContract{}) }
func TestEngineContractMariaDB(t *testing.T)  { runContract(t, "MariaDB", &mariaContract{}) }
func TestEngineContractRedis(t *testing.T)    { runContract(t, "Redis", &redisContract{}) }

// pgContract: a primary and two streaming replicas, through slots of two
// naming styles (pg_1, slot_pg_2), with an unrelated slot backup_keep.
type pgContract struct {
	replicaSet[*dbserver.Postgres]
}

func (a *pgContract) start(t *testing.T) *bed {
	a.primary = dbserver.StartPostgres(t, dbserver.PostgresOptions{Password: pgPassword})
	a.replicas[1] = a.primary.StartReplica(t, "pg_1")
	a.replicas[2] = a.primary.StartReplica(t, "slot_pg_2")
	a.primary.Query(t, "SELECT pg_create_physical_replication_slot('backup_keep', true)")
	a.primary.Query(t, "CREATE TABLE filler AS SELECT generate_series(1, 50000) AS n")
	return a.bed(t, "pg", "docker.io/library/postgres:15", pgEnv)
}

func (a *pgContract) secret() string { return pgPassword }

func (a *pgContract) quiesce(t *testing.T) {
	a.primary.Query(t, "INSERT INTO filler VALUES (0)")
	time.Sleep(16 * time.Second)
	lsn := a.primary.Query(t, "SELECT pg_current_wal_lsn()")
	require.Eventually(t, func() bool {
		return a.replicas[1].Query(t, fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'", lsn)) == "t"
	}, waitTimeout, 200*time.Millisecond, "the replica replays everything before it restarts")
}

func (a *pgContract) load(t *testing.T, stop <-chan struct{}) {
	for {
		if _, err := a.primary.QueryErr("INSERT INTO filler SELECT generate_series(1, 20000)"); err != nil {
			t.Errorf("load: %v", err)
			return
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

func (a *pgContract) breakReplica(t *testing.T, i int) {
	a.replicas[i].Query(t, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%s user=postgres'", closedPort(t)))
	a.replicas[i].Query(t, "SELECT pg_reload_conf()")
}

func (a *pgContract) pauseReplay(t *testing.T, i int) func() {
	a.replicas[i].Query(t, "SELECT pg_wal_replay_pause()")
	return func() { a.replicas[i].Query(t, "SELECT pg_wal_replay_resume()") }
}

func (a *pgContract) notApplicable() map[string]string { return nil }

func (a *pgContract) checkRoles(t *testing.T, ms []plugins.Member) {
	slots := map[string]plugins.Slot{}
	for _, s := range ms[0].Slots {
		slots[s.Name] = s
	}
	require.Contains(t, slots, "backup_keep")
	assert.True(t, slots["pg_1"].Active, "replica 1 streams through pg_1")
	assert.True(t, slots["slot_pg_2"].Active, "replica 2 streams through slot_pg_2")
	assert.False(t, slots["backup_keep"].Active)
	require.NotNil(t, slots["backup_keep"].RetainedBytes)
	assert.Greater(t, *slots["backup_keep"].RetainedBytes, int64(1<<20), "backup_keep pins the WAL written since it was made")
	assert.Equal(t, "reserved", slots["backup_keep"].WALStatus)
	assert.Equal(t, "pg_1", ms[1].Details["slot"])
	assert.Equal(t, "slot_pg_2", ms[2].Details["slot"])
	assert.Equal(t, "streaming", ms[1].State)
}

// After a restart on an idle primary the receive position is the start
// of a WAL segment, below the replay position: the case lag must get
// right.
func (a *pgContract) checkRestarted(t *testing.T, replica plugins.Member) {
	assert.NotEqual(t, replica.Details["receiveLsn"], replica.Details["replayLsn"])
}

func (a *pgContract) checkBroken(t *testing.T, replica plugins.Member) {
	assert.NotEqual(t, "streaming", replica.State)
	assert.Equal(t, plugins.RoleReplica, replica.Role, "a replica that does not stream is still a replica")
}

func (a *pgContract) checkRemoved(t *testing.T) {
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1"}, slotNames(t, a.primary), "exactly the removed member's slot went")
}

const mariadbPassword = "maria-s3cret"

// mariaEnv points the client at the server; the password is the
// official image's MARIADB_ROOT_PASSWORD, which the engine hands to the
// client as MYSQL_PWD inside the pod.
func mariaEnv(m *dbserver.MariaDB) map[string]string {
	return withPassword(m, "MARIADB_ROOT_PASSWORD", mariadbPassword)
}

// mariaContract: a primary and two GTID replicas.
type mariaContract struct {
	replicaSet[*dbserver.MariaDB]
	appliedAsItArrives
}

func (a *mariaContract) start(t *testing.T) *bed {
	a.primary = dbserver.StartMariaDB(t, dbserver.MariaDBOptions{Password: mariadbPassword})
	a.replicas[1] = a.primary.StartReplica(t)
	a.replicas[2] = a.primary.StartReplica(t)
	a.primary.Query(t, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT); INSERT INTO app.t (v) VALUES (1)")
	return a.bed(t, "maria", "mariadb:10.11", mariaEnv)
}

func (a *mariaContract) secret() string { return mariadbPassword }

// load: replica 1 holds a read lock on the table the primary writes to,
// so its SQL thread waits and Seconds_Behind_Master grows (MariaDB
// measures lag in whole seconds only).
func (a *mariaContract) load(t *testing.T, stop <-chan struct{}) {
	locked := make(chan struct{})
	go func() {
		defer close(locked)
		if _, err := a.replicas[1].QueryErr("LOCK TABLES app.t READ; DO SLEEP(4); UNLOCK TABLES"); err != nil {
			t.Errorf("load: %v", err)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	for {
		if _, err := a.primary.QueryErr("INSERT INTO app.t (v) VALUES (1), (2), (3)"); err != nil {
			t.Errorf("load: %v", err)
			break
		}
		select {
		case <-stop:
			<-locked
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	<-locked
}

// breakReplica: a row the replica already has arrives again; its SQL
// thread stops on the duplicate key.
func (a *mariaContract) breakReplica(t *testing.T, i int) {
	a.replicas[i].Query(t, "SET GLOBAL read_only = OFF; INSERT INTO app.t (id, v) VALUES (1000000, 0); SET GLOBAL read_only = ON")
	a.primary.Query(t, "INSERT INTO app.t (id, v) VALUES (1000000, 0)")
}

func (a *mariaContract) notApplicable() map[string]string {
	return map[string]string{
		"replay paused": "MariaDB has no paused replay: a stopped SQL thread is replication broken, the case that covers it",
	}
}

func (a *mariaContract) checkRoles(t *testing.T, ms []plugins.Member) {
	assert.Equal(t, "OFF", ms[0].Details["read_only"])
	for _, m := range ms[1:] {
		assert.Equal(t, "Yes/Yes", m.State)
		assert.Equal(t, "ON", m.Details["read_only"])
		assert.NotEmpty(t, m.Details["gtid"], "GTID position")
	}
}

func (a *mariaContract) checkRestarted(t *testing.T, replica plugins.Member) {
	assert.Equal(t, "Yes/Yes", replica.State)
}

func (a *mariaContract) checkBroken(t *testing.T, replica plugins.Member) {
	assert.Equal(t, "Yes/No", replica.State)
	assert.Contains(t, replica.Details["lastSQLError"], "Duplicate entry '1000000'")
}

const redisPassword = "redis-s3cret"

// redisEnv: the port and password variables of the Bitnami image; the
// engine hands the password to redis-cli as REDISCLI_AUTH.
func redisEnv(r *dbserver.Redis) map[string]string {
	return withPassword(r, "REDIS_PASSWORD", redisPassword)
}

// redisContract: a primary and two replicas.
type redisContract struct {
	replicaSet[*dbserver.Redis]
	appliedAsItArrives
}

func (a *redisContract) start(t *testing.T) *bed {
	a.primary = dbserver.StartRedis(t, dbserver.RedisOptions{Password: redisPassword})
	a.replicas[1] = a.primary.StartReplica(t)
	a.replicas[2] = a.primary.StartReplica(t)
	for i := 0; i < 100; i++ {
		a.primary.Do(t, "SET", "key"+strconv.Itoa(i), "value")
	}
	return a.bed(t, "cache", "valkey/valkey:8", redisEnv)
}

func (a *redisContract) secret() string { return redisPassword }

func (a *redisContract) load(t *testing.T, stop <-chan struct{}) {
	value := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		if _, err := a.primary.DoErr("SET", "load"+strconv.Itoa(i%100), value); err != nil {
			t.Errorf("load: %v", err)
			return
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

func (a *redisContract) breakReplica(t *testing.T, i int) {
	a.replicas[i].Do(t, "REPLICAOF", "127.0.0.1", closedPort(t))
}

func (a *redisContract) notApplicable() map[string]string {
	return map[string]string{
		"replay paused": "Redis applies the replication stream as it arrives; it has no replay to pause",
	}
}

func (a *redisContract) checkRoles(t *testing.T, ms []plugins.Member) {
	assert.Equal(t, "2", ms[0].Details["connectedReplicas"])
	for _, m := range ms[1:] {
		assert.Equal(t, "link up", m.State)
	}
	offset, err := strconv.ParseInt(ms[0].Details["offset"], 10, 64)
	require.NoError(t, err)
	assert.Greater(t, offset, int64(1000), "100 writes moved the replication offset")
}

func (a *redisContract) checkRestarted(t *testing.T, replica plugins.Member) {
	assert.Equal(t, "link up", replica.State)
}

func (a *redisContract) checkBroken(t *testing.T, replica plugins.Member) {
	assert.Equal(t, "link down", replica.State)
}

// unitsOf returns the lag units e measures; the contract requires every
// engine to say.
func unitsOf(e plugins.Engine) plugins.LagUnits {
	lm, ok := e.(plugins.LagMeasurer)
	if !ok {
		panic(e.Name() + " does not say which lag it measures")
	}
	return lm.LagUnits()
}
