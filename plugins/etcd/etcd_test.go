package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/pluginstest"
)

// Fixtures: what endpoint status, member list and alarm list printed on
// each member of a real three-member etcd 3.6 cluster (members etcd-0,
// etcd-1, etcd-2; etcd-1 leads), one file per member, separated by fixtureSep.
func fixture(t *testing.T, i int) string {
	t.Helper()
	return pluginstest.Testdata(t, fmt.Sprintf("view-%d.txt", i))
}

const fixtureSep = "--- kubectl-sts ---"

// reply answers each etcdctl command with its part of a fixture.
func reply(view string) kubefake.Handler {
	parts := strings.Split(view, fixtureSep)
	return func(req kube.ExecRequest) (kube.ExecResult, error) {
		switch strings.Join(req.Command, " ") {
		case strings.Join(statusArgs, " "):
			return kube.ExecResult{Stdout: []byte(parts[0])}, nil
		case strings.Join(listArgs, " "):
			return kube.ExecResult{Stdout: []byte(parts[1])}, nil
		case strings.Join(alarmArgs, " "):
			return kube.ExecResult{Stdout: []byte(parts[2])}, nil
		}
		return kube.ExecResult{ExitCode: 1, Stderr: []byte("unexpected command")}, nil
	}
}

func target(ex kube.Executor, pods ...string) plugins.Target {
	return pluginstest.Target(ex, "etcd", corev1.Container{Name: "etcd", Image: "quay.io/coreos/etcd:v3.6.16"}, pods...)
}

func TestMembersFromRecordedViews(t *testing.T) {
	_, ex := kubefake.NewClient()
	for i := 0; i < 3; i++ {
		ex.Handle(fmt.Sprintf("etcd-%d", i), reply(fixture(t, i)))
	}
	e := New()
	ms, err := e.Members(context.Background(), target(ex, "etcd-0", "etcd-1", "etcd-2"))
	require.NoError(t, err)
	require.Len(t, ms, 3)
	assert.Equal(t, plugins.RoleReplica, ms[0].Role)
	assert.Equal(t, "follower", ms[0].State)
	assert.Equal(t, plugins.RolePrimary, ms[1].Role)
	assert.Equal(t, "leader", ms[1].State)
	assert.Equal(t, "bdae9bbc11dd390d", ms[1].Details["id"], "member IDs in hex, as etcdctl takes them")
	assert.Equal(t, "http://127.0.0.1:23801", ms[1].Details["peerURLs"])
	assert.Equal(t, "2", ms[1].Details["raftTerm"])
	assert.Equal(t, "24576", ms[1].Details["dbSize"])
	assert.Equal(t, "16384", ms[1].Details["dbSizeInUse"])
	assert.Equal(t, "0", ms[1].Details["indexLag"])
	assert.Equal(t, "1", ms[0].Details["indexLag"], "the leader's commit index 10 minus the follower's applied 9")
	assert.Equal(t, "0", ms[2].Details["indexLag"], "applied 11, ahead of the leader's answer a moment before")
	assert.Empty(t, ms[0].Details["membersWithoutPod"])
	for _, c := range ex.Calls() {
		assert.Contains(t, [][]string{statusArgs, listArgs, alarmArgs}, c.Command, "etcdctl alone, with the pod's own environment")
	}
	assert.Len(t, ex.Calls(), 9)
	ok, reason := e.Healthy(ms, plugins.HealthOptions{})
	assert.True(t, ok, reason)
	ok, reason = e.Healthy(ms, plugins.HealthOptions{MaxLagBytes: 1024})
	assert.False(t, ok, "etcd measures no bytes")
	assert.Contains(t, reason, "lag in bytes unknown")

	m, err := e.Membership(context.Background(), target(ex, "etcd-0", "etcd-1", "etcd-2"))
	require.NoError(t, err)
	require.Len(t, m.Voters, 3)
	assert.Len(t, m.Healthy(), 3)
}

func TestStoppedMemberDeadVoterLearnerAndAlarm(t *testing.T) {
	e := New()
	// etcd-2's member does not answer.
	_, ex := kubefake.NewClient()
	ex.Handle("etcd-0", reply(fixture(t, 0)))
	ex.Handle("etcd-1", reply(fixture(t, 1)))
	ex.Handle("etcd-2", func(kube.ExecRequest) (kube.ExecResult, error) {
		return kube.ExecResult{ExitCode: 1, Stderr: []byte(`{"level":"warn","msg":"retrying of unary invoker failed"}` + "\nError: context deadline exceeded\n")}, nil
	})
	tg := target(ex, "etcd-0", "etcd-1", "etcd-2")
	ms, err := e.Members(context.Background(), tg)
	require.NoError(t, err)
	ok, reason := e.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "no answer from etcd-2 (etcdctl in pod etcd-2 exited with code 1: Error: context deadline exceeded)")
	m, err := e.Membership(context.Background(), tg)
	require.NoError(t, err)
	assert.Len(t, m.Voters, 3)
	assert.Equal(t, []plugins.Voter{{Name: "etcd-2", Pod: "etcd-2", Ordinal: 2}}, m.Lost(), "mapped to its pod by its name in the membership")
	assert.Contains(t, m.LostReason(), "already lost etcd-2: 2 of 3 voters answer")

	// Only two pods: e2 is a member no pod runs.
	ms, err = e.Members(context.Background(), target(ex, "etcd-0", "etcd-1"))
	require.NoError(t, err)
	ok, reason = e.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "the membership lists members no pod runs (dead voters): etcd-2 (id 2943212f5e2cf73, peer http://127.0.0.1:23802)")

	// A learner and a NOSPACE alarm.
	learner := strings.Replace(fixture(t, 2), `"raftAppliedIndex":`, `"isLearner":true,"raftAppliedIndex":`, 1)
	learner = strings.Replace(learner, `"name":"e2",`, `"name":"e2","isLearner":true,`, 1)
	// The alarm list is the cluster's: the leader's view (etcd-1) counts.
	alarm := strings.TrimSpace(fixture(t, 1))
	alarm = alarm[:len(alarm)-1] + `,"alarms":[{"memberID":3319814642761637952,"alarm":1}]}`
	ex.Handle("etcd-1", reply(alarm))
	ex.Handle("etcd-2", reply(learner))
	ms, err = e.Members(context.Background(), tg)
	require.NoError(t, err)
	assert.Equal(t, plugins.RoleLearner, ms[2].Role)
	assert.Equal(t, "NOSPACE", ms[0].Details["alarms"])
	ok, reason = e.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "alarm NOSPACE on etcd-0")
	assert.Contains(t, reason, "etcd-2 is a learner: promote it (etcdctl member promote 2943212f5e2cf73)")
}

func TestParseViewPicksThePodsOwnEndpoint(t *testing.T) {
	p := strings.Split(fixture(t, 1), fixtureSep)
	v, err := ParseView([]byte(p[0]), []byte(p[1]), []byte(p[2]), "etcd-1")
	require.NoError(t, err)
	assert.Equal(t, uint64(13668033151171901709), v.Self.Status.Header.MemberID)
	// ETCDCTL_ENDPOINTS naming every member: the entry of the pod's own.
	all := "[" + strings.Trim(strings.TrimSpace(strings.Split(fixture(t, 0), fixtureSep)[0]), "[]") + "," +
		strings.Trim(strings.TrimSpace(p[0]), "[]") + "]"
	v, err = ParseView([]byte(all), []byte(p[1]), []byte(p[2]), "etcd-1")
	require.NoError(t, err)
	assert.Equal(t, uint64(13668033151171901709), v.Self.Status.Header.MemberID)
	_, err = ParseView([]byte(all), []byte(p[1]), []byte(p[2]), "other-1")
	assert.ErrorContains(t, err, "ETCDCTL_ENDPOINTS names 2 endpoints and none is a member named other-1")
	_, err = ParseView([]byte("garbage"), []byte(p[1]), []byte(p[2]), "etcd-1")
	assert.ErrorContains(t, err, "parsing endpoint status")
}

// fakeCluster answers readScript, member remove and move-leader like a
// real cluster of members named after their pods.
type fakeCluster struct {
	mu      sync.Mutex
	ids     []uint64
	members map[uint64]bool
	leader  uint64
	down    map[int]bool
	learner map[int]bool
	// prefix names the members (prefix + index); "etcd-", like the pods,
	// when empty.
	prefix string
	calls  []string
}

func newFakeCluster(n int) *fakeCluster {
	c := &fakeCluster{members: map[uint64]bool{}, down: map[int]bool{}, learner: map[int]bool{}}
	for i := 0; i < n; i++ {
		id := uint64(0x1000 + i)
		c.ids = append(c.ids, id)
		c.members[id] = true
	}
	c.leader = c.ids[n-1]
	return c
}

func (c *fakeCluster) handle(i int) kubefake.Handler {
	return func(req kube.ExecRequest) (kube.ExecResult, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		id := c.ids[i]
		if c.down[i] || !c.members[id] {
			return kube.ExecResult{ExitCode: 1, Stderr: []byte("Error: context deadline exceeded")}, nil
		}
		switch cmd := strings.Join(req.Command, " "); cmd {
		case strings.Join(listArgs, " "), strings.Join(alarmArgs, " "):
			if c.learner[i] {
				// As a real learner answers: only endpoint status.
				return kube.ExecResult{ExitCode: 1, Stderr: []byte("Error: etcdserver: rpc not supported for learner")}, nil
			}
		case strings.Join(statusArgs, " "):
		default:
			c.calls = append(c.calls, fmt.Sprintf("etcd-%d: %s", i, strings.Join(req.Command[1:], " ")))
			switch req.Command[1] {
			case "member":
				for _, x := range c.ids {
					if HexID(x) == req.Command[3] {
						delete(c.members, x)
					}
				}
			case "move-leader":
				for _, x := range c.ids {
					if HexID(x) == req.Command[2] {
						c.leader = x
					}
				}
			}
			return kube.ExecResult{}, nil
		}
		st := EndpointStatus{Endpoint: "x"}
		st.Status.Header.MemberID, st.Status.Leader, st.Status.RaftTerm = id, c.leader, 2
		st.Status.IsLearner = c.learner[i]
		var list struct {
			Members []MemberInfo `json:"members"`
		}
		for k, x := range c.ids {
			if c.members[x] {
				prefix := c.prefix
				if prefix == "" {
					prefix = "etcd-"
				}
				list.Members = append(list.Members, MemberInfo{ID: x, Name: fmt.Sprintf("%s%d", prefix, k), IsLearner: c.learner[k]})
			}
		}
		var out []byte
		switch req.Command[1] {
		case "endpoint":
			out, _ = json.Marshal([]EndpointStatus{st})
		case "member":
			out, _ = json.Marshal(list)
		default:
			out = []byte("{}")
		}
		return kube.ExecResult{Stdout: out}, nil
	}
}

func (c *fakeCluster) target(n int) plugins.Target {
	_, ex := kubefake.NewClient()
	var pods []string
	for i := 0; i < n; i++ {
		ex.Handle(fmt.Sprintf("etcd-%d", i), c.handle(i))
		pods = append(pods, fmt.Sprintf("etcd-%d", i))
	}
	return target(ex, pods...)
}

func TestBeforeRemoveMovesTheLeaderThenRemovesTheMember(t *testing.T) {
	c := newFakeCluster(3) // etcd-2 leads
	e := &Engine{PollInterval: time.Millisecond}
	var events []plugins.RemoveEvent
	opts := plugins.RemoveOptions{Wait: time.Second, Events: func(ev plugins.RemoveEvent) { events = append(events, ev) }}

	dry := opts
	dry.DryRun = true
	require.NoError(t, e.BeforeRemove(context.Background(), c.target(3), 2, dry))
	assert.Empty(t, c.calls, "a dry run changes nothing")
	assert.True(t, c.members[0x1002])

	events = nil
	require.NoError(t, e.BeforeRemove(context.Background(), c.target(3), 2, opts))
	require.Len(t, c.calls, 2)
	assert.Equal(t, "etcd-2: move-leader 1000", c.calls[0])
	assert.Contains(t, c.calls[1], "member remove 1002")
	assert.False(t, c.members[0x1002])
	var actions []plugins.RemoveAction
	for _, ev := range events {
		actions = append(actions, ev.Action)
	}
	assert.Equal(t, []plugins.RemoveAction{plugins.ActionChecked, plugins.ActionChanged, plugins.ActionChecked, plugins.ActionChanged, plugins.ActionChecked}, actions)

	// Resumed after the member went but before the pod did: nothing is
	// removed twice.
	c.calls = nil
	events = nil
	require.NoError(t, e.BeforeRemove(context.Background(), c.target(3), 2, opts))
	assert.Empty(t, c.calls)
	assert.Equal(t, plugins.ActionSkipped, events[0].Action)
	assert.Contains(t, events[0].Message, "already removed")
}

func TestBeforeRemoveOfALearnerChangesNoQuorum(t *testing.T) {
	c := newFakeCluster(4)
	c.learner[3] = true
	c.leader = 0x1000
	e := &Engine{PollInterval: time.Millisecond}
	ms, err := e.Members(context.Background(), c.target(4))
	require.NoError(t, err)
	assert.Empty(t, ms[3].Error, "a learner answers endpoint status only, which is enough")
	assert.Equal(t, plugins.RoleLearner, ms[3].Role)
	ok, reason := e.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "etcd-3 is a learner: promote it (etcdctl member promote 1003) once it has caught up", reason)

	// A voter leaves while the learner stays: the learner's view (no
	// membership of its own) does not hold the wait up.
	c.leader = 0x1000
	require.NoError(t, e.BeforeRemove(context.Background(), c.target(4), 2, plugins.RemoveOptions{Wait: time.Second}))
	assert.Equal(t, []string{"etcd-0: member remove 1002"}, c.calls)
	c.calls = nil
	c.members[0x1002] = true
	var events []plugins.RemoveEvent
	opts := plugins.RemoveOptions{Wait: time.Second, Events: func(ev plugins.RemoveEvent) { events = append(events, ev) }}
	require.NoError(t, e.BeforeRemove(context.Background(), c.target(4), 3, opts))
	assert.Equal(t, []string{"etcd-0: member remove 1003"}, c.calls)
	require.NotEmpty(t, events)
	assert.Equal(t, plugins.ActionChecked, events[0].Action)
	assert.Equal(t, "member 1003 (etcd-3) is a learner: the 3 voters and the quorum of 2 do not change", events[0].Message)

	m, err := e.Membership(context.Background(), c.target(3))
	require.NoError(t, err)
	assert.Len(t, m.Voters, 3)
	assert.Empty(t, m.Learners, "removed")
}

func TestMembersNamedUnlikePodsAndOneDown(t *testing.T) {
	c := newFakeCluster(5)
	c.prefix = "infra"
	c.leader = 0x1000
	e := &Engine{PollInterval: time.Millisecond}
	m, err := e.Membership(context.Background(), c.target(5))
	require.NoError(t, err, "every member answers with its ID")
	assert.Len(t, m.Healthy(), 5)

	c.down[4] = true
	_, err = e.Membership(context.Background(), c.target(5))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "etcd-4 does not answer, and the membership lists infra4 (id 1004, peer ), named like no pod")
	err = e.BeforeRemove(context.Background(), c.target(5), 4, plugins.RemoveOptions{Wait: time.Second})
	require.Error(t, err, "not taken for a member already removed")
	assert.Contains(t, err.Error(), "etcd-4 does not answer")
	assert.Empty(t, c.calls)
}

func TestAfterRemoveWarnsOfAMemberNamedUnlikeAnyPod(t *testing.T) {
	c := newFakeCluster(3)
	c.prefix = "infra"
	c.down[2] = true // the pod went first; its member infra2 is still a voter
	c.leader = 0x1000
	e := &Engine{PollInterval: time.Millisecond}
	var events []plugins.RemoveEvent
	opts := plugins.RemoveOptions{Wait: time.Second, Events: func(ev plugins.RemoveEvent) { events = append(events, ev) }}
	require.NoError(t, e.AfterRemove(context.Background(), c.target(2), 2, opts))
	assert.Empty(t, c.calls, "which member was etcd-2's cannot be told: nothing removed")
	require.Len(t, events, 1)
	assert.Equal(t, plugins.ActionWarning, events[0].Action)
	assert.Contains(t, events[0].Message, "the membership lists members no pod runs: infra2 (id 1002, peer ); if one of them was etcd-2's, it is a voter that will never answer")
}

func TestBeforeRemoveRefusesToBreakQuorum(t *testing.T) {
	c := newFakeCluster(3)
	c.down[0] = true
	e := &Engine{PollInterval: time.Millisecond}
	err := e.BeforeRemove(context.Background(), c.target(3), 1, plugins.RemoveOptions{Wait: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "removing etcd-1 leaves 2 voters of which 1 answer (etcd-2), below the quorum of 2")
	assert.Empty(t, c.calls, "nothing changed")
	assert.True(t, c.members[0x1001])
}

func TestAfterRemoveRemovesADeadVoterLeftBehind(t *testing.T) {
	c := newFakeCluster(3)
	c.down[2] = true // the pod went first; its member is still a voter
	c.leader = 0x1000
	e := &Engine{PollInterval: time.Millisecond}
	require.NoError(t, e.AfterRemove(context.Background(), c.target(2), 2, plugins.RemoveOptions{Wait: time.Second}))
	require.Len(t, c.calls, 1)
	assert.Equal(t, "etcd-0: member remove 1002", c.calls[0])
	c.calls = nil
	require.NoError(t, e.AfterRemove(context.Background(), c.target(2), 2, plugins.RemoveOptions{Wait: time.Second}))
	assert.Empty(t, c.calls, "running it again is not an error and changes nothing")
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"quay.io/coreos/etcd:v3.6.16", "bitnami/etcd:3.5", "registry.k8s.io/etcd:3.5.12-0", "gcr.io/etcd-development/etcd:v3.6.0"},
		[]string{"etcd-operator:1", "bitnami/etcd-exporter", "nginx"})
}

func TestHealthyJudgesTheMembersThatStayWithoutTheLeader(t *testing.T) {
	_, ex := kubefake.NewClient()
	for i := 0; i < 3; i++ {
		ex.Handle(fmt.Sprintf("etcd-%d", i), reply(fixture(t, i)))
	}
	e := New()
	ms, err := e.Members(context.Background(), target(ex, "etcd-0", "etcd-1", "etcd-2"))
	require.NoError(t, err)
	// etcd-1 leads and is being removed: the others still follow it.
	ok, reason := e.Healthy([]plugins.Member{ms[0], ms[2]}, plugins.HealthOptions{})
	assert.True(t, ok, reason)
	ms[2].Details["leader"] = "0"
	ok, reason = e.Healthy([]plugins.Member{ms[0], ms[2]}, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "etcd-2 follows leader 0, not bdae9bbc11dd390d", reason)
}
