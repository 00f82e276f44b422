package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func voters(pods ...string) []plugins.Voter {
	var out []plugins.Voter
	for i, p := range pods {
		out = append(out, plugins.Voter{Name: fmt.Sprintf("server.%d", i+1), Pod: p, Ordinal: i, Healthy: true})
	}
	return out
}

func TestLeaderPlanFor(t *testing.T) {
	plan3, err := BuildPlan("db", 3, 0, nil)
	require.NoError(t, err)
	plan2steps, err := BuildPlan("db", 3, 0, []StepSpec{{Value: 1}, {Value: 100, Percent: true}})
	require.NoError(t, err)
	none := func(string) bool { return false }
	cases := []struct {
		name          string
		plan          Plan
		done          int
		leader        string
		updated       func(string) bool
		step, restart int
		want, wantNot string
	}{
		{name: "lowest leads", plan: plan3, leader: "db-0", updated: none, step: 3,
			want: "db-0 leads and is rolled last, in step 3 of 3, when every other voter is on the new revision: no extra restart"},
		{name: "middle leads", plan: plan3, leader: "db-1", updated: none, step: 2, restart: 2,
			want: "db-1 leads and step 2 of 3 would roll it while db-0 is still on the old revision.", wantNot: "no server is on the new revision"},
		{name: "highest leads, nothing updated yet", plan: plan3, leader: "db-2", updated: none, step: 1, restart: 1,
			want: "no server is on the new revision before step 1, so the leadership goes to one on the old revision"},
		{name: "the leader's step also rolls the pod below it", plan: plan2steps, leader: "db-1", updated: none, step: 2, restart: 2,
			want: "db-1 leads and step 2 of 2 would roll it while db-0 is still on the old revision"},
		{name: "the leader is already updated", plan: plan3, done: 1, leader: "db-2", updated: func(p string) bool { return p == "db-2" },
			want: "db-2 leads and is not rolled by this plan: no extra restart"},
		{name: "resumed after step 1, middle leads", plan: plan3, done: 1, leader: "db-1", updated: func(p string) bool { return p == "db-2" }, step: 2, restart: 2,
			want: "the new leader must be a server on the new revision (db-2)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := plugins.Leadership{Engine: "fakedb", Leader: tc.leader, Voters: voters("db-0", "db-1", "db-2")}
			l.LeaderOrdinal = int(tc.leader[len(tc.leader)-1] - '0')
			lp := leaderPlanFor(l, tc.plan, tc.done, tc.updated, "the election picks the highest id")
			assert.Equal(t, tc.leader, lp.Leader)
			assert.Equal(t, tc.step, lp.Step, "step that rolls the leader")
			assert.Equal(t, tc.restart, lp.RestartBefore, "restart before step")
			assert.Contains(t, lp.Message, tc.want)
			if tc.wantNot != "" {
				assert.NotContains(t, lp.Message, tc.wantNot)
			}
		})
	}
}

func TestHandoffPending(t *testing.T) {
	plan, err := BuildPlan("db", 4, 0, nil)
	require.NoError(t, err)
	step2 := plan.Steps[1] // db-2
	updated := func(p string) bool { return p == "db-3" }
	l := plugins.Leadership{Leader: "db-2", LeaderOrdinal: 2, Voters: voters("db-0", "db-1", "db-2", "db-3")}
	assert.Equal(t, "db-2 leads and this step would roll it while db-0, db-1 are still on the old revision", handoffPending(l, step2, updated))
	l.Leader, l.LeaderOrdinal = "db-1", 1
	assert.Equal(t, "db-1 on the old revision leads although db-3 on the new revision is synced", handoffPending(l, step2, updated),
		"after a restart, an old leader that would need moving again is not enough while an updated server could lead")
	assert.Empty(t, leaderMisplaced(l, step2, updated), "but before any restart db-1 leading is no reason to restart before this step")
	l.Leader, l.LeaderOrdinal = "db-0", 0
	assert.Empty(t, handoffPending(l, step2, updated), "db-0 is rolled last anyway")
	l.Leader, l.LeaderOrdinal = "db-3", 3
	assert.Empty(t, handoffPending(l, step2, updated))
	l.Leader = ""
	assert.Equal(t, "no server leads", handoffPending(l, step2, updated))
}

// electingEngine is a consensus engine whose leader, once its pod is
// restarted (new UID or gone), is replaced by the highest ordinal among
// the other pods, as ZooKeeper's election picks the highest server id
// when the zxids are equal; sticky makes the restarted pod win again.
type electingEngine struct {
	*fakeEngine
	mu        sync.Mutex
	leader    string
	uid       types.UID
	sticky    bool
	elections []string
}

func (e *electingEngine) Membership(_ context.Context, t plugins.Target) (plugins.Membership, error) {
	m := plugins.Membership{Engine: "fakedb"}
	for _, p := range t.SortedPods() {
		m.Voters = append(m.Voters, plugins.Voter{Name: p.Name, Pod: p.Name, Ordinal: plugins.Ordinal(t.StatefulSet, p), Healthy: true})
	}
	return m, nil
}

func (e *electingEngine) ElectionRule() string { return "the election picks the highest ordinal" }

func (e *electingEngine) Leadership(ctx context.Context, t plugins.Target) (plugins.Leadership, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pods := t.SortedPods()
	var cur *corev1.Pod
	for _, p := range pods {
		if p.Name == e.leader {
			cur = p
		}
	}
	switch {
	case cur != nil && e.uid == "":
		e.uid = cur.UID
	case cur == nil || cur.UID != e.uid:
		var next *corev1.Pod
		for _, p := range pods {
			if (p.Name == e.leader) == e.sticky {
				next = p
			}
		}
		if next == nil {
			return plugins.Leadership{Engine: "fakedb", LeaderOrdinal: -1}, nil
		}
		e.leader, e.uid = next.Name, next.UID
		e.elections = append(e.elections, next.Name)
	}
	m, _ := e.Membership(ctx, t)
	l := plugins.Leadership{Engine: "fakedb", Leader: e.leader, Voters: m.Voters}
	for _, v := range m.Voters {
		if v.Pod == e.leader {
			l.LeaderOrdinal = v.Ordinal
		}
	}
	return l, nil
}

// evictions makes the fake API server honour evictions by deleting the
// pod, and counts them; after, if set, runs after each.
func evictions(c *fakeCluster, after func()) *[]string {
	var mu sync.Mutex
	var got []string
	podGVR := corev1.SchemeGroupVersion.WithResource("pods")
	c.ctrl.React("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		mu.Lock()
		got = append(got, ev.Name)
		mu.Unlock()
		err := c.cs.Tracker().Delete(podGVR, a.GetNamespace(), ev.Name)
		if after != nil {
			after()
		}
		return true, nil, err
	})
	return &got
}

// changesSince returns the pods created after the first n, as pod:old or
// pod:new.
func changesSince(c *fakeCluster, n int, from, to string) []string {
	var out []string
	for _, ch := range c.podChanges()[n:] {
		ch = strings.Replace(ch, ":"+from, ":old", 1)
		out = append(out, strings.Replace(ch, ":"+to, ":new", 1))
	}
	return out
}

func leaderRunner(c *fakeCluster, e *electingEngine) *Runner {
	r := c.runner("me", nil)
	r.Engines = plugins.NewRegistry(e)
	return r
}

func TestLeaderRestartedInPlaceBeforeTheStepThatWouldRollIt(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	n := len(c.podChanges())
	evicted := evictions(c, nil)
	e := &electingEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, leader: "db-1"}
	r := leaderRunner(c, e)
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	require.NoError(t, err)
	require.NotNil(t, pv.Leader)
	assert.Equal(t, 2, pv.Leader.RestartBefore)
	require.NoError(t, r.Run(ctxT(t), pv))

	to := c.sts("db").Status.CurrentRevision
	assert.Equal(t, []string{"db-2:new", "db-1:old", "db-1:new", "db-0:new"}, changesSince(c, n, from, to))
	assert.Equal(t, []string{"db-1"}, *evicted, "one restart in place, by eviction")
	assert.Equal(t, []string{"db-2"}, e.elections, "the leadership moved once, to the updated db-2")
	assert.Contains(t, eventReasons(t, c), ReasonLeaderRestart)
	assert.Contains(t, eventReasons(t, c), ReasonLeaderMoved)
	rec, st := record(t, c)
	assert.Nil(t, st.Handoff)
	var history []string
	for _, h := range rec.History {
		history = append(history, h.Message)
	}
	assert.Contains(t, strings.Join(history, "\n"), "restarting pod db-1 in place on revision "+from)
}

func TestLeaderOnTheLowestOrdinalIsNotRestarted(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	n := len(c.podChanges())
	evicted := evictions(c, nil)
	e := &electingEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, leader: "db-0"}
	r := leaderRunner(c, e)
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	require.NoError(t, err)
	assert.Equal(t, 0, pv.Leader.RestartBefore)
	assert.Equal(t, 3, pv.Leader.Step)
	require.NoError(t, r.Run(ctxT(t), pv))
	to := c.sts("db").Status.CurrentRevision
	assert.Equal(t, []string{"db-2:new", "db-1:new", "db-0:new"}, changesSince(c, n, from, to))
	assert.Empty(t, *evicted)
	assert.NotContains(t, eventReasons(t, c), ReasonLeaderRestart)
}

// A run killed right after it evicted the leader is resumed: the resumed
// run waits for the recorded restart, reads the leader again, and
// restarts nothing more.
func TestResumeAfterAKillDuringTheLeaderRestart(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	n := len(c.podChanges())
	ctx, cancel := context.WithCancel(ctxT(t))
	evicted := evictions(c, cancel)
	e := &electingEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, leader: "db-1"}
	r := leaderRunner(c, e)
	pv, err := r.Prepare(ctx, Request{Gates: Gates{Engine: "auto"}})
	require.NoError(t, err)
	require.ErrorIs(t, r.Run(ctx, pv), context.Canceled)
	_, st := record(t, c)
	require.NotNil(t, st.Handoff, "the restart in progress is recorded")
	assert.Equal(t, "db-1", st.Handoff.Pod)
	assert.Equal(t, 2, st.Handoff.Step)

	r2 := leaderRunner(c, e)
	pv2, err := r2.Prepare(ctxT(t), Request{Resume: true})
	require.NoError(t, err)
	require.NoError(t, r2.Run(ctxT(t), pv2))
	to := c.sts("db").Status.CurrentRevision
	assert.Equal(t, []string{"db-2:new", "db-1:old", "db-1:new", "db-0:new"}, changesSince(c, n, from, to))
	assert.Equal(t, []string{"db-1"}, *evicted, "not restarted again")
	assert.Equal(t, []string{"db-2"}, e.elections)
}

func TestLeaderHandoffStopsAfterMaxRestarts(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)
	evicted := evictions(c, nil)
	e := &electingEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, leader: "db-1", sticky: true}
	r := leaderRunner(c, e)
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto", StepTimeout: 5 * time.Second}})
	require.NoError(t, err)
	err = r.Run(ctxT(t), pv)
	var na *NeedsAttentionError
	require.ErrorAs(t, err, &na)
	assert.Contains(t, err.Error(), "step 2 of 3 not started: db-1 leads and this step would roll it while db-0 is still on the old revision after 3 restarts of the leader in place")
	assert.Equal(t, []string{"db-1", "db-1", "db-1"}, *evicted)
	assert.Equal(t, int32(2), Partition(c.sts("db")), "the partition holds after step 1")
}

// The leader is the highest ordinal, rolled in the first step, when no
// server is on the new revision yet: its restart in place hands the
// leadership to an old server (db-1), which is moved once more, to the
// updated db-2, before its own step.
func TestLeaderOnTheHighestOrdinalMovesTwice(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	n := len(c.podChanges())
	evicted := evictions(c, nil)
	e := &electingEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}, leader: "db-2"}
	r := leaderRunner(c, e)
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	require.NoError(t, err)
	assert.Equal(t, 1, pv.Leader.RestartBefore)
	require.NoError(t, r.Run(ctxT(t), pv))
	to := c.sts("db").Status.CurrentRevision
	assert.Equal(t, []string{"db-2:old", "db-2:new", "db-1:old", "db-1:new", "db-0:new"}, changesSince(c, n, from, to))
	assert.Equal(t, []string{"db-2", "db-1"}, *evicted)
	assert.Equal(t, []string{"db-1", "db-2"}, e.elections)
}
