package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/pluginstest"
)

// The fixtures are membersSQL's output recorded on PostgreSQL 15: a
// primary with a streaming replica on slot pg_1, an inactive reserved
// slot pg_2, a never-used slot backup_slot and a logical slot cdc.
func fixture(t *testing.T, name string) map[string]any { return pluginstest.TestdataJSON(t, name) }

func encode(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b) + "\n"
}

func pod(name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "db"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "metrics", Image: "postgres-exporter"}, {Name: "postgres", Image: "postgres:15"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// server is a scripted PostgreSQL behind the fake executor.
type server struct {
	mu      sync.Mutex
	view    string
	fail    string          // stderr of a failing psql, if set
	exit    int             // its exit code; 2 when unset
	slots   map[string]bool // slot name → active
	drops   []string
	queries []string
	// afterNoopDrop, if set, runs when a drop found its slot active:
	// the replica letting go just after.
	afterNoopDrop func(s *server)
	// onStateRead, if set, runs after each read of a slot's state has
	// been answered.
	onStateRead func(s *server)
	// unreachable fails the next commands in the executor itself, the
	// way a dropped connection to the kubelet does, before psql runs.
	unreachable int
	// stall is how long such a failing command takes.
	stall time.Duration
}

func (s *server) handle(req kube.ExecRequest) (kube.ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req.Command) != 6 || req.Command[0] != "sh" || req.Command[3] != "psql" || req.Command[4] != "-c" {
		return kube.ExecResult{}, fmt.Errorf("unexpected command %q", req.Command)
	}
	sql := req.Command[5]
	if s.unreachable > 0 {
		s.unreachable--
		time.Sleep(s.stall)
		return kube.ExecResult{}, errors.New("dial tcp 127.0.0.1:10250: i/o timeout")
	}
	s.queries = append(s.queries, sql)
	if s.fail != "" {
		code := s.exit
		if code == 0 {
			code = 2
		}
		return kube.ExecResult{Stderr: []byte(s.fail), ExitCode: code}, nil
	}
	switch {
	case sql == membersSQL:
		return kube.ExecResult{Stdout: []byte(s.view)}, nil
	case strings.Contains(sql, "pg_drop_replication_slot"):
		for name, active := range s.slots {
			if sql == dropSlotSQL(name) {
				if active {
					if s.afterNoopDrop != nil {
						s.afterNoopDrop(s)
					}
					return kube.ExecResult{Stdout: []byte("0\n")}, nil
				}
				delete(s.slots, name)
				s.drops = append(s.drops, name)
				return kube.ExecResult{Stdout: []byte("1\n")}, nil
			}
		}
		return kube.ExecResult{Stdout: []byte("0\n")}, nil
	case strings.Contains(sql, "'exists'"):
		if s.onStateRead != nil {
			defer s.onStateRead(s)
		}
		for name, active := range s.slots {
			if sql == slotStateSQL(name) {
				return kube.ExecResult{Stdout: []byte(fmt.Sprintf(`{"exists" : true, "active" : %t, "activePid" : 4242}`+"\n", active))}, nil
			}
		}
		return kube.ExecResult{Stdout: []byte(`{"exists" : false, "active" : false, "activePid" : null}` + "\n")}, nil
	}
	return kube.ExecResult{}, fmt.Errorf("unexpected SQL %q", sql)
}

type env struct {
	target  plugins.Target
	ex      *kubefake.Executor
	servers map[string]*server
	events  []plugins.RemoveEvent
}

func newEnv(t *testing.T, views map[string]string) *env {
	t.Helper()
	_, ex := kubefake.NewClient()
	e := &env{ex: ex, servers: map[string]*server{}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "pg", Namespace: "db"}}
	e.target = plugins.Target{StatefulSet: sts, Exec: ex, Timeout: time.Second}
	for i := 0; i < len(views); i++ {
		name := fmt.Sprintf("pg-%d", i)
		s := &server{view: views[name], slots: map[string]bool{}}
		e.servers[name] = s
		ex.Handle(name, s.handle)
		e.target.Pods = append(e.target.Pods, pod(name, fmt.Sprintf("10.0.0.%d", i+10)))
	}
	return e
}

func (e *env) opts() plugins.RemoveOptions {
	return plugins.RemoveOptions{Wait: 10 * time.Second, Events: func(ev plugins.RemoveEvent) { e.events = append(e.events, ev) }}
}

// testPoll is how often the slot wait asks again in tests.
const testPoll = 5 * time.Millisecond

// testEngine polls the slot wait every testPoll.
func testEngine() (*Engine, *time.Time) {
	now := time.Now()
	return &Engine{Interval: testPoll}, &now
}

func standardViews(t *testing.T) map[string]string {
	return map[string]string{
		"pg-0": encode(t, fixture(t, "primary.json")),
		"pg-1": encode(t, fixture(t, "replica.json")),
	}
}

func TestMembersFromRecordedServers(t *testing.T) {
	e := newEnv(t, standardViews(t))
	e.target.Pods = append(e.target.Pods, pod("pg-2", "10.0.0.12"))
	e.ex.Handle("pg-2", func(kube.ExecRequest) (kube.ExecResult, error) {
		return kube.ExecResult{Stderr: []byte(`psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory`), ExitCode: 2}, nil
	})
	members, err := New().Members(context.Background(), e.target)
	require.NoError(t, err)
	require.Len(t, members, 3)

	p := members[0]
	assert.Equal(t, plugins.RolePrimary, p.Role)
	assert.Equal(t, "read-write", p.State)
	assert.Equal(t, "0/3620760", p.Details["currentLsn"])
	assert.Equal(t, "1 connected, 1 streaming", p.Details["replicas"])
	require.Len(t, p.Slots, 4)
	slots := map[string]plugins.Slot{}
	for _, s := range p.Slots {
		slots[s.Name] = s
	}
	assert.True(t, slots["pg_1"].Active)
	assert.Equal(t, int64(23201592), *slots["pg_2"].RetainedBytes)
	assert.Equal(t, "reserved", slots["pg_2"].WALStatus)
	assert.Nil(t, slots["backup_slot"].RetainedBytes, "a slot never reserved retains nothing measurable")
	assert.Equal(t, "logical", slots["cdc"].Type)

	r := members[1]
	assert.Equal(t, plugins.RoleReplica, r.Role)
	assert.Equal(t, "streaming", r.State)
	require.NotNil(t, r.LagBytes)
	assert.Equal(t, int64(0), *r.LagBytes)
	require.NotNil(t, r.LagSeconds)
	assert.Equal(t, 0.0, *r.LagSeconds)
	assert.Equal(t, "pg_1", r.Details["slot"])
	assert.Equal(t, "async", r.Details["syncState"], "matched to the primary's row through slot pg_1")

	u := members[2]
	assert.Equal(t, plugins.RoleUnknown, u.Role)
	assert.Contains(t, u.Error, "psql in pod pg-2 exited with code 2: psql: error: connection to server")

	for _, c := range e.ex.Calls() {
		assert.Equal(t, "postgres", c.Container, "runs in the container whose image matched")
		assert.NotContains(t, c.Command[2], "SELECT", "SQL is a positional parameter, not part of the shell script")
	}
}

func TestLagFromThePrimarysRow(t *testing.T) {
	primary := fixture(t, "primary.json")
	row := primary["replication"].([]any)[0].(map[string]any)
	row["applicationName"] = "pg-1" // Patroni's application_name
	row["pid"] = 1                  // no slot link: the name must match
	row["state"] = "catchup"
	row["replayLsn"] = "0/3000000"
	row["lagBytes"] = 6424416
	row["replayLag"] = 12.5
	replica := fixture(t, "replica.json")
	replica["replayLsn"] = "0/3000000" // as far behind as the row says
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	members, err := New().Members(context.Background(), e.target)
	require.NoError(t, err)
	r := members[1]
	assert.Equal(t, "catchup", r.State)
	assert.Equal(t, int64(6424416), *r.LagBytes)
	assert.Equal(t, 12.5, *r.LagSeconds)

	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "pg-1 is catchup, not streaming", reason)
}

func TestLagByIPAndByPosition(t *testing.T) {
	primary := fixture(t, "primary.json")
	row := primary["replication"].([]any)[0].(map[string]any)
	row["pid"] = 1
	row["clientAddr"] = "10.0.0.11"
	row["lagBytes"] = 77
	replica := fixture(t, "replica.json")
	replica["receiver"].(map[string]any)["slotName"] = nil
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	members, err := New().Members(context.Background(), e.target)
	require.NoError(t, err)
	assert.Equal(t, int64(77), *members[1].LagBytes, "matched by the pod's IP")

	// No row matches at all: the distance between the two positions.
	row["clientAddr"] = "192.0.2.1"
	replica["replayLsn"] = "0/3600000"
	e = newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	members, err = New().Members(context.Background(), e.target)
	require.NoError(t, err)
	assert.Equal(t, int64(0x3620760-0x3600000), *members[1].LagBytes)
}

func TestHealthy(t *testing.T) {
	eng := New()
	lag := func(b int64, s float64) plugins.Member {
		return plugins.Member{Pod: "pg-1", Ordinal: 1, Role: plugins.RoleReplica, State: "streaming", LagBytes: plugins.Int64(b), LagSeconds: plugins.Float64(s)}
	}
	primary := plugins.Member{Pod: "pg-0", Role: plugins.RolePrimary, State: "read-write"}
	cases := []struct {
		name    string
		members []plugins.Member
		opts    plugins.HealthOptions
		reason  string
	}{
		{"healthy", []plugins.Member{primary, lag(100, 0.5)}, plugins.HealthOptions{MaxLagBytes: 1000, MaxLagSeconds: 1}, ""},
		{"no bounds", []plugins.Member{primary, lag(1<<40, 3600)}, plugins.HealthOptions{}, ""},
		{"bytes over", []plugins.Member{primary, lag(2000, 0)}, plugins.HealthOptions{MaxLagBytes: 1000}, "pg-1: 2000 bytes behind (bound 1000)"},
		{"seconds over", []plugins.Member{primary, lag(0, 30)}, plugins.HealthOptions{MaxLagSeconds: 10}, "pg-1: 30.0s behind (bound 10s)"},
		{"no primary", []plugins.Member{lag(0, 0)}, plugins.HealthOptions{}, "no member is primary"},
		{"two primaries", []plugins.Member{primary, {Pod: "pg-1", Role: plugins.RolePrimary}}, plugins.HealthOptions{}, "more than one primary: pg-0, pg-1"},
		{"unanswered", []plugins.Member{primary, {Pod: "pg-1", Role: plugins.RoleUnknown, Error: "timeout"}}, plugins.HealthOptions{}, "no answer from pg-1 (timeout)"},
		{"not streaming", []plugins.Member{primary, {Pod: "pg-1", Role: plugins.RoleReplica, State: "recovering"}}, plugins.HealthOptions{}, "pg-1 is recovering, not streaming"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := eng.Healthy(tc.members, tc.opts)
			assert.Equal(t, tc.reason == "", ok)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestAfterRemoveDropsOnlyTheRemovedMembersInactiveSlot(t *testing.T) {
	e := newEnv(t, standardViews(t))
	e.servers["pg-0"].slots = map[string]bool{"pg_1": true, "pg_2": false, "backup_slot": false}
	eng, _ := testEngine()
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 2, e.opts()))
	assert.Equal(t, []string{"pg_2"}, e.servers["pg-0"].drops)
	require.Len(t, e.events, 1)
	assert.Equal(t, plugins.ActionChanged, e.events[0].Action)
	assert.Equal(t, "dropped replication slot pg_2 on pg-0", e.events[0].Message)
	for _, c := range e.ex.Calls() {
		if strings.Contains(c.Command[5], "pg_drop_replication_slot") {
			assert.Equal(t, "pg-0", c.Pod, "slots are dropped on the primary")
		}
	}
}

func TestAfterRemoveDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, standardViews(t))
	e.servers["pg-0"].slots = map[string]bool{"pg_2": false}
	eng, _ := testEngine()
	opts := e.opts()
	opts.DryRun = true
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 2, opts))
	assert.Empty(t, e.servers["pg-0"].drops)
	for _, q := range e.servers["pg-0"].queries {
		assert.NotContains(t, q, "pg_drop_replication_slot")
	}
	require.Len(t, e.events, 1)
	assert.True(t, e.events[0].DryRun)
	assert.Equal(t, "would drop replication slot pg_2 on pg-0 (inactive, retaining 23201592 bytes of WAL)", e.events[0].Message)
}

// activeSlotEnv is a primary, pg-0, whose slot for the removed pg-1 is
// active: the replica still streams when the slot wait begins.
func activeSlotEnv(t *testing.T) (*env, *server) {
	t.Helper()
	e := newEnv(t, map[string]string{"pg-0": encode(t, fixture(t, "primary.json"))})
	srv := e.servers["pg-0"]
	srv.slots = map[string]bool{"pg_1": true}
	return e, srv
}

func TestAfterRemoveWaitsForAnActiveSlot(t *testing.T) {
	// pg-1 is being removed; its slot stays active for three polls.
	e, srv := activeSlotEnv(t)
	eng, _ := testEngine()
	// The replica lets go after the third poll found the slot active.
	reads := 0
	srv.onStateRead = func(s *server) {
		if reads++; reads == 3 {
			s.slots["pg_1"] = false
		}
	}
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 1, e.opts()))
	assert.Equal(t, []string{"pg_1"}, srv.drops)
	assert.Equal(t, 3, reads, "three polls found it active, the fourth dropped it")
	require.Len(t, e.events, 2)
	assert.Equal(t, plugins.ActionWaiting, e.events[0].Action)
	assert.Contains(t, e.events[0].Message, "replication slot pg_1 on pg-0 is active by pid 4242; waiting up to 10s")
	assert.Equal(t, plugins.ActionChanged, e.events[1].Action)
}

// The replica stops within a moment of its pod going: the drop finds the
// slot still active and drops nothing, the state read right after finds it
// inactive. The next attempt, within the same wait, drops it.
func TestAfterRemoveDropsASlotThatWentInactiveJustAfterANoopDrop(t *testing.T) {
	e, srv := activeSlotEnv(t)
	srv.afterNoopDrop = func(s *server) { s.slots["pg_1"] = false }
	eng, _ := testEngine()
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 1, e.opts()))
	assert.Equal(t, []string{"pg_1"}, srv.drops)
	require.NotEmpty(t, e.events)
	last := e.events[len(e.events)-1]
	assert.Equal(t, plugins.ActionChanged, last.Action)
	assert.Equal(t, "dropped replication slot pg_1 on pg-0", last.Message)
}

func TestAfterRemoveNeverDropsAnActiveSlotAndTimesOut(t *testing.T) {
	e, _ := activeSlotEnv(t)
	eng, _ := testEngine()
	opts := e.opts()
	opts.Wait = 100 * time.Millisecond
	err := eng.AfterRemove(context.Background(), e.target, 1, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replication slot pg_1 on pg-0 is still active by pid 4242 after 100ms")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a timeout of the wait layer")
	assert.Contains(t, err.Error(), "never drops an active slot")
	assert.Empty(t, e.servers["pg-0"].drops)
	assert.True(t, e.servers["pg-0"].slots["pg_1"])
}

// A command that never reached psql (the exec stream to the pod failed) is
// no answer about the slot: the wait asks again instead of giving up.
func TestAfterRemoveRidesOutACommandThatNeverReachedTheServer(t *testing.T) {
	e, srv := activeSlotEnv(t)
	eng, _ := testEngine()
	// The first state read finds the slot active; the two commands after
	// it fail on the way to the pod; then the replica has let go.
	srv.onStateRead = func(s *server) {
		s.slots["pg_1"] = false
		s.unreachable = 2
		s.onStateRead = nil
	}
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 1, e.opts()))
	assert.Equal(t, []string{"pg_1"}, srv.drops)
	require.NotEmpty(t, e.events)
	last := e.events[len(e.events)-1]
	assert.Equal(t, plugins.ActionChanged, last.Action)
	assert.Equal(t, "dropped replication slot pg_1 on pg-0", last.Message)
}

// When the primary stays unreachable the wait ends at its own deadline and
// says why, with nothing dropped.
func TestAfterRemoveUnreachablePrimaryTimesOutSayingWhy(t *testing.T) {
	e, srv := activeSlotEnv(t)
	srv.onStateRead = func(s *server) { s.unreachable = 1 << 20 }
	eng, _ := testEngine()
	opts := e.opts()
	opts.Wait = 100 * time.Millisecond
	err := eng.AfterRemove(context.Background(), e.target, 1, opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a timeout of the wait layer")
	assert.Contains(t, err.Error(), "replication slot pg_1 on pg-0 was not dropped within 100ms")
	assert.Contains(t, err.Error(), "i/o timeout")
	assert.Empty(t, srv.drops)
	assert.True(t, srv.slots["pg_1"])
}

// The wait's own deadline cuts a command short: the wait ends on its
// timeout, and says what the last answer was (the slot is active), not the
// cut command's error.
func TestAfterRemoveDeadlineCuttingACommandShortKeepsTheLastAnswer(t *testing.T) {
	e, srv := activeSlotEnv(t)
	srv.onStateRead = func(s *server) { s.unreachable, s.stall = 1, 150*time.Millisecond }
	eng, _ := testEngine()
	opts := e.opts()
	opts.Wait = 100 * time.Millisecond
	err := eng.AfterRemove(context.Background(), e.target, 1, opts)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a timeout of the wait layer")
	assert.Contains(t, err.Error(), "replication slot pg_1 on pg-0 is still active by pid 4242 after 100ms")
	assert.NotContains(t, err.Error(), "i/o timeout")
	assert.True(t, srv.slots["pg_1"])
}

// psql that ran and failed on the SQL is an answer: the wait stops at once.
func TestAfterRemoveStopsOnAnSQLError(t *testing.T) {
	e, srv := activeSlotEnv(t)
	srv.onStateRead = func(s *server) { s.fail = "ERROR:  permission denied for function pg_drop_replication_slot" }
	srv.exit = 3
	eng, _ := testEngine()
	start := time.Now()
	err := eng.AfterRemove(context.Background(), e.target, 1, e.opts())
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "not the 10s wait")
	assert.Contains(t, err.Error(), "permission denied")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}

func TestAfterRemoveAlreadyDroppedIsSuccess(t *testing.T) {
	e := newEnv(t, standardViews(t))
	eng, _ := testEngine()
	// pg_3's slot does not exist by any convention.
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 3, e.opts()))
	require.Len(t, e.events, 1)
	assert.Equal(t, plugins.ActionSkipped, e.events[0].Action)
	assert.Contains(t, e.events[0].Message, "no replication slot of pg-3 on pg-0 (looked for pg_3, slot_pg_3, _cnpg_pg_3, repmgr_slot_1003)")

	// Listed at read time, gone by the time of the drop.
	e = newEnv(t, standardViews(t))
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 2, e.opts()))
	require.Len(t, e.events, 1)
	assert.Equal(t, "replication slot pg_2 on pg-0 is already gone", e.events[0].Message)
}

func TestAfterRemoveExplicitSlotNames(t *testing.T) {
	eng, _ := testEngine()

	e := newEnv(t, standardViews(t))
	opts := e.opts()
	opts.SlotNames = []string{"pg_1"}
	err := eng.AfterRemove(context.Background(), e.target, 2, opts)
	assert.EqualError(t, err, "slot pg_1 is used by pod pg-1, which stays: not dropping it (check --slot-name)")

	opts.SlotNames = []string{"Bad-Name'; DROP TABLE x; --"}
	err = eng.AfterRemove(context.Background(), e.target, 2, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--slot-name: replication slot name")

	e2 := newEnv(t, standardViews(t))
	e2.servers["pg-0"].slots = map[string]bool{"cdc": false}
	opts = e2.opts()
	opts.SlotNames = []string{"cdc", "missing"}
	require.NoError(t, eng.AfterRemove(context.Background(), e2.target, 2, opts))
	assert.Equal(t, []string{"cdc"}, e2.servers["pg-0"].drops, "a named logical slot is dropped too")
	// pg_2, named for ordinal 2 but not named on the command line, is
	// left, and said so.
	require.Len(t, e2.events, 3)
	assert.True(t, e2.events[0].Left)
	assert.Equal(t, "slot pg_2", e2.events[0].Object)
	assert.Contains(t, e2.events[0].Message, "replication slot pg_2 on pg-0 is named for the removed ordinal 2 but is not among the slots this step drops (cdc, missing): it is left, retaining 22.1MiB of WAL")
	assert.Equal(t, "slot missing does not exist on pg-0 (already dropped)", e2.events[1].Message)
}

func TestInvalidSlotNameChangesNothing(t *testing.T) {
	e := newEnv(t, standardViews(t))
	eng, _ := testEngine()
	opts := e.opts()
	opts.SlotNames = []string{"ok_name", "x'); SELECT pg_drop_replication_slot('pg_1"}
	require.Error(t, eng.AfterRemove(context.Background(), e.target, 2, opts))
	require.Error(t, eng.BeforeRemove(context.Background(), e.target, 1, opts))
	assert.Empty(t, e.ex.Calls(), "bad input is refused before anything runs")
}

func TestConventionSkipsSlotsInUseAndLogicalSlots(t *testing.T) {
	primary := fixture(t, "primary.json")
	slots := primary["slots"].([]any)
	slots = append(slots, map[string]any{"name": "slot_pg_2", "type": "logical", "active": false})
	primary["slots"] = slots
	replica := fixture(t, "replica.json")
	replica["receiver"].(map[string]any)["slotName"] = "_cnpg_pg_2" // a remaining replica uses it
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	e.servers["pg-0"].slots = map[string]bool{"pg_2": false, "slot_pg_2": false, "_cnpg_pg_2": false}
	primary["slots"] = append(slots, map[string]any{"name": "_cnpg_pg_2", "type": "physical", "active": true})
	e.servers["pg-0"].view = encode(t, primary)
	eng, _ := testEngine()
	require.NoError(t, eng.AfterRemove(context.Background(), e.target, 2, e.opts()))
	assert.Equal(t, []string{"pg_2"}, e.servers["pg-0"].drops)
	var warnings []string
	for _, ev := range e.events {
		if ev.Action == plugins.ActionWarning {
			warnings = append(warnings, ev.Message)
		}
	}
	assert.ElementsMatch(t, []string{
		"slot slot_pg_2 is a logical slot, not a replica's: not dropping it (name it with --slot-name to drop it)",
		"slot _cnpg_pg_2 is used by pod pg-1, which stays: not dropping it",
	}, warnings)
}

func TestAfterRemoveNeedsAPrimary(t *testing.T) {
	e := newEnv(t, map[string]string{"pg-0": encode(t, fixture(t, "replica.json"))})
	eng, _ := testEngine()
	err := eng.AfterRemove(context.Background(), e.target, 1, e.opts())
	assert.EqualError(t, err, "cannot drop the replication slot of ordinal 1: no member is primary")
}

func TestBeforeRemove(t *testing.T) {
	e := newEnv(t, standardViews(t))
	eng, _ := testEngine()
	err := eng.BeforeRemove(context.Background(), e.target, 0, e.opts())
	assert.ErrorContains(t, err, "pod pg-0 is the primary")

	require.NoError(t, eng.BeforeRemove(context.Background(), e.target, 1, e.opts()))
	require.Len(t, e.events, 1)
	assert.Equal(t, "pod pg-1 is not the primary (role replica)", e.events[0].Message)

	// A replica streaming from a slot no convention names: warn before.
	replica := fixture(t, "replica.json")
	replica["receiver"].(map[string]any)["slotName"] = "custom_standby"
	e = newEnv(t, map[string]string{"pg-0": standardViews(t)["pg-0"], "pg-1": encode(t, replica)})
	require.NoError(t, eng.BeforeRemove(context.Background(), e.target, 1, e.opts()))
	require.Len(t, e.events, 2)
	assert.Equal(t, plugins.ActionWarning, e.events[1].Action)
	assert.Contains(t, e.events[1].Message, "pass --slot-name custom_standby to drop it")
}

func TestParseLSN(t *testing.T) {
	n, err := ParseLSN("16/B374D848")
	require.NoError(t, err)
	assert.Equal(t, uint64(0x16B374D848), n)
	for _, bad := range []string{"", "16", "x/1", "1/x", "1/100000000"} {
		_, err := ParseLSN(bad)
		assert.Error(t, err, bad)
	}
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"postgres:16", "bitnami/postgresql:16", "ghcr.io/cloudnative-pg/postgresql:16.2",
			"registry.opensource.zalan.do/acid/spilo-16:3.2-p2", "postgis/postgis:16-3.4", "timescale/timescaledb-ha:pg16"},
		[]string{"prometheuscommunity/postgres-exporter", "mysql:8", "bitnami/pgbouncer", "edoburu/pgbouncer"})
}

// After a restart the replica's receive position is the start of a WAL
// segment, below its replay position, and on an idle primary its last
// replayed commit grows old: the lag is still zero while it has replayed
// everything the primary has. Once the primary writes more than the
// replica replayed, the age of its last replayed commit is the lag.
func TestLagSecondsAfterReplicaRestartOnIdlePrimary(t *testing.T) {
	primary := fixture(t, "primary.json")
	row := primary["replication"].([]any)[0].(map[string]any)
	row["replayLag"] = nil // an idle primary stops measuring
	row["lagBytes"] = 0
	replica := fixture(t, "replica.json")
	replica["receiveLsn"] = "0/3000000"
	replica["replayDelay"] = 83.2 // what the old receive = replay test fell back to
	replica["replayAge"] = 83.2
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	members, err := New().Members(context.Background(), e.target)
	require.NoError(t, err)
	require.NotNil(t, members[1].LagSeconds)
	assert.Equal(t, 0.0, *members[1].LagSeconds)
	ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 30})
	assert.True(t, ok, reason)

	// The primary moved on; the replica replayed all it received.
	primary["lsn"] = "0/3700000"
	row["lagBytes"] = 0x3700000 - 0x3620760
	replica["replayDelay"] = 0
	e = newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, replica)})
	members, err = New().Members(context.Background(), e.target)
	require.NoError(t, err)
	require.NotNil(t, members[1].LagSeconds)
	assert.Equal(t, 83.2, *members[1].LagSeconds)
}

func TestReplicaStreamingFromNoMemberIsBrokenAndCascadingIsNot(t *testing.T) {
	// pg-1 streams (its receiver says so), but the primary lists no standby.
	primary := fixture(t, "primary.json")
	primary["replication"] = []any{}
	primary["slots"] = []any{}
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, fixture(t, "replica.json"))})
	members, err := New().Members(context.Background(), e.target)
	require.NoError(t, err)
	assert.Equal(t, StateStreamingElsewhere, members[1].State)
	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "replica pg-1 streams from 127.0.0.1:38197, not from the primary pg-0: no member lists it as a standby", reason)
	traps := New().Traps(members, plugins.TrapOptions{StatefulSet: "pg", Replicas: 2})
	require.NotEmpty(t, traps)
	assert.Equal(t, plugins.TrapReplicationBroken, traps[0].Code)
	assert.True(t, traps[0].Broken)

	// The primary lists a standby no replica could be matched to (no slot,
	// a default application name, an address a proxy hides): pg-1 may be
	// it, so its receiver's word stands.
	anonymous := fixture(t, "primary.json")
	anonymous["slots"] = []any{}
	e = newEnv(t, map[string]string{"pg-0": encode(t, anonymous), "pg-1": encode(t, fixture(t, "replica.json"))})
	members, err = New().Members(context.Background(), e.target)
	require.NoError(t, err)
	assert.Equal(t, "streaming", members[1].State)
	ok, _ = New().Healthy(members, plugins.HealthOptions{})
	assert.True(t, ok)

	// pg-2 lists pg-1 as its standby: cascading replication, healthy.
	upstreamReplica := fixture(t, "replica.json")
	upstreamReplica["replication"] = fixture(t, "primary.json")["replication"]
	upstreamReplica["replication"].([]any)[0].(map[string]any)["applicationName"] = "pg-1"
	e = newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, fixture(t, "replica.json")), "pg-2": encode(t, upstreamReplica)})
	members, err = New().Members(context.Background(), e.target)
	require.NoError(t, err)
	assert.Equal(t, "streaming", members[1].State)
	assert.Equal(t, "pg-2", members[1].Details["upstream"])
}

func TestBeforeRemoveOfASilentReplicaNamesTheSlotsThatMayBeIts(t *testing.T) {
	primary := fixture(t, "primary.json")
	var slots []any
	for _, sl := range primary["slots"].([]any) {
		if sl.(map[string]any)["name"] != "pg_2" {
			slots = append(slots, sl)
		}
	}
	slots = append(slots, map[string]any{"name": "replica_c", "type": "physical", "active": false, "retainedBytes": 1 << 20})
	primary["slots"] = slots
	e := newEnv(t, map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, fixture(t, "replica.json")), "pg-2": ""})
	e.servers["pg-2"].fail = "psql: error: connection to server failed: Connection refused"
	eng, _ := testEngine()
	require.NoError(t, eng.BeforeRemove(context.Background(), e.target, 2, e.opts()))
	var warnings []string
	for _, ev := range e.events {
		if ev.Action == plugins.ActionWarning {
			warnings = append(warnings, ev.Message)
		}
	}
	require.Len(t, warnings, 1, "%q", warnings)
	assert.Contains(t, warnings[0], "pg-2 does not answer, so the slot it streams from cannot be read, and no slot on pg-0 is named for it (pg_2, slot_pg_2, _cnpg_pg_2, repmgr_slot_1002)")
	assert.Contains(t, warnings[0], "replica_c (retaining 1.0MiB of WAL)")
	assert.NotContains(t, warnings[0], "cdc", "a logical slot is a client's")
	assert.NotContains(t, warnings[0], "pg_1", "pg-1 streams from it")

	// With pg_2 there, the convention names pg-2's slot: no guess.
	e = newEnv(t, map[string]string{"pg-0": encode(t, fixture(t, "primary.json")), "pg-1": encode(t, fixture(t, "replica.json")), "pg-2": ""})
	e.servers["pg-2"].fail = "psql: error: connection to server failed: Connection refused"
	require.NoError(t, eng.BeforeRemove(context.Background(), e.target, 2, e.opts()))
	for _, ev := range e.events {
		assert.NotEqual(t, plugins.ActionWarning, ev.Action, ev.Message)
	}
}
