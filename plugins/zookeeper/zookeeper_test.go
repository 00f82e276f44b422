package zookeeper

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

// Fixtures: what wordsScript printed for srvr, mntr and conf on each
// server of a real ZooKeeper 3.8 ensemble of three with reconfigEnabled
// (zk-2, server.3, leads; three znodes written).
func fixture(t *testing.T, i int) string {
	t.Helper()
	return pluginstest.Testdata(t, fmt.Sprintf("view-%d.txt", i+1))
}

func target(ex kube.Executor, n int) plugins.Target {
	pods := make([]string, n)
	for i := range pods {
		pods[i] = fmt.Sprintf("zk-%d", i)
	}
	return pluginstest.Target(ex, "zk", corev1.Container{Name: "zookeeper", Image: "zookeeper:3.8"}, pods...)
}

func recorded(t *testing.T, views ...string) plugins.Target {
	_, ex := kubefake.NewClient()
	for i, v := range views {
		ex.Handle(fmt.Sprintf("zk-%d", i), kubefake.Reply(v, 0))
	}
	return target(ex, len(views))
}

func TestMembersFromRecordedWords(t *testing.T) {
	e := New()
	tg := recorded(t, fixture(t, 0), fixture(t, 1), fixture(t, 2))
	ms, err := e.Members(context.Background(), tg)
	require.NoError(t, err)
	require.Len(t, ms, 3)
	assert.Equal(t, plugins.RoleReplica, ms[0].Role)
	assert.Equal(t, "follower", ms[0].State)
	assert.Equal(t, plugins.RolePrimary, ms[2].Role)
	assert.Equal(t, "leader", ms[2].State)
	assert.Equal(t, "0x100000006", ms[0].Details["zxid"])
	assert.Equal(t, "0", ms[0].Details["zxidLag"])
	assert.Equal(t, "0", ms[0].Details["outstanding"])
	assert.Equal(t, "3", ms[2].Details["serverId"])
	assert.Equal(t, "2", ms[2].Details["synced_followers"])
	assert.Equal(t, "enabled", ms[1].Details["reconfig"])
	ok, reason := e.Healthy(ms, plugins.HealthOptions{})
	assert.True(t, ok, reason)

	m, err := e.Membership(context.Background(), tg)
	require.NoError(t, err)
	assert.Empty(t, m.Static)
	require.Len(t, m.Voters, 3)
	assert.Equal(t, plugins.Voter{Name: "server.3", Pod: "zk-2", Ordinal: 2, Healthy: true}, m.Voters[2])
	// 3 → 2: quorum of 2 is 2.
	got := m.CheckRemoval([]int{2})
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "with 2 voters zookeeper needs both for quorum (2): losing either member, even for a restart, stops writes")
}

func TestLagNotServingAndStaticConfig(t *testing.T) {
	e := New()
	behind := strings.Replace(fixture(t, 0), "Zxid: 0x100000006", "Zxid: 0x100000001", 1)
	off := strings.Replace(fixture(t, 1), "reconfigEnabled=true", "reconfigEnabled=false", 1)
	notServing := "This ZooKeeper instance is not currently serving requests\n--- kubectl-sts ---\n--- kubectl-sts ---\n--- kubectl-sts ---\n"
	tg := recorded(t, behind, off, fixture(t, 2))
	eng := &Engine{MaxZxidLag: 2}
	ms, err := eng.Members(context.Background(), tg)
	require.NoError(t, err)
	assert.Equal(t, "5", ms[0].Details["zxidLag"])
	ok, reason := eng.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "zk-0 is 5 transactions behind the leader (bound 2)", reason)
	ok, reason = e.Healthy(ms, plugins.HealthOptions{MaxLagSeconds: 5})
	assert.False(t, ok, "ZooKeeper measures no seconds")
	assert.Contains(t, reason, "lag in seconds unknown")

	m, err := e.Membership(context.Background(), tg)
	require.NoError(t, err)
	assert.Contains(t, m.Static, "dynamic reconfiguration is off (reconfigEnabled=false)")
	assert.Contains(t, m.Static, "remove the servers of the removed ordinals from the server.N lines of zoo.cfg")
	assert.Contains(t, m.Static, "the leader last")
	err = e.BeforeRemove(context.Background(), tg, 1, plugins.RemoveOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot be changed while it runs")

	tg = recorded(t, fixture(t, 0), notServing, fixture(t, 2))
	ms, err = e.Members(context.Background(), tg)
	require.NoError(t, err)
	assert.Contains(t, ms[1].Error, "not serving requests")
	m, err = e.Membership(context.Background(), tg)
	require.NoError(t, err)
	assert.Equal(t, []plugins.Voter{{Name: "server.2", Pod: "zk-1", Ordinal: 1}}, m.Lost(), "mapped by its host name")
}

func TestZxidLag(t *testing.T) {
	assert.Equal(t, int64(5), ZxidLag(0x100000006, 0x100000001))
	assert.Equal(t, int64(0), ZxidLag(0x100000000, 0x0), "idle new epoch")
	assert.Equal(t, int64(6), ZxidLag(0x200000006, 0x100000009))
	assert.Equal(t, int64(0), ZxidLag(0x100000001, 0x100000006))
}

func TestWordsReachTheServerAsArguments(t *testing.T) {
	_, ex := kubefake.NewClient()
	ex.HandleAll(kubefake.Reply(fixture(t, 0), 0))
	_, err := New().Members(context.Background(), target(ex, 1))
	require.NoError(t, err)
	c := ex.Calls()[0]
	assert.Equal(t, []string{"bash", "-c", wordsScript, "zookeeper", "srvr", "mntr", "conf"}, c.Command)
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"zookeeper:3.9", "bitnami/zookeeper:3.8", "docker.io/library/zookeeper:3.8.4"},
		[]string{"dabealu/zookeeper-exporter", "kafka:3"})
}

func TestLeadershipFromRecordedWords(t *testing.T) {
	e := New()
	l, err := e.Leadership(context.Background(), recorded(t, fixture(t, 0), fixture(t, 1), fixture(t, 2)))
	require.NoError(t, err)
	assert.Equal(t, "zk-2", l.Leader)
	assert.Equal(t, 2, l.LeaderOrdinal)
	require.Len(t, l.Voters, 3)
	for _, v := range l.Voters {
		assert.True(t, v.Healthy, v.Pod)
	}

	// zk-0 behind the leader by more than the bound: not synced.
	lagging := strings.Replace(fixture(t, 0), "Zxid: 0x100000006", "Zxid: 0x100000001", 1)
	e.MaxZxidLag = 2
	l, err = e.Leadership(context.Background(), recorded(t, lagging, fixture(t, 1), fixture(t, 2)))
	require.NoError(t, err)
	v, ok := l.Voter("zk-0")
	require.True(t, ok)
	assert.False(t, v.Healthy, "5 transactions behind, bound 2")
	v, _ = l.Voter("zk-1")
	assert.True(t, v.Healthy)
}

// With no leader answering, the membership of the highest configuration
// version counts; versions are hex zxids, whose length grows with the
// epoch (0xf00000003 is older than 0x1000000005).
func TestNewestMembershipWithoutALeaderComparesVersionsAsNumbers(t *testing.T) {
	notServing := "This ZooKeeper instance is not currently serving requests\n--- kubectl-sts ---\n--- kubectl-sts ---\n--- kubectl-sts ---\n"
	older := strings.Replace(fixture(t, 0), "version=100000000", "version=f00000003", 1)
	newer := strings.Replace(fixture(t, 1), "version=100000000", "version=1000000005", 1)
	newer = strings.Replace(newer, "server.3=zk-2.zk-headless.default.svc:24883:24893:participant;127.0.0.1:24873\n", "", 1)
	for _, views := range [][]string{{older, newer, notServing}, {newer, older, notServing}} {
		// zk-0 and zk-1 swap views: the answer must not depend on order.
		m, err := New().Membership(context.Background(), recorded(t, views...))
		require.NoError(t, err)
		var names []string
		for _, v := range m.Voters {
			names = append(names, v.Name)
		}
		assert.Equal(t, []string{"server.1", "server.2"}, names)
	}
}

func TestAfterRemoveWarnsOfAServerWhoseHostNamesNoPod(t *testing.T) {
	ip := func(v string) string {
		return strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(v, "zk-0.zk-headless.default.svc", "10.0.0.1"),
			"zk-1.zk-headless.default.svc", "10.0.0.2"), "zk-2.zk-headless.default.svc", "10.0.0.3")
	}
	// zk-2's pod went first (--engine none); server.3 stays in the membership.
	var events []plugins.RemoveEvent
	opts := plugins.RemoveOptions{Events: func(ev plugins.RemoveEvent) { events = append(events, ev) }}
	require.NoError(t, New().AfterRemove(context.Background(), recorded(t, ip(fixture(t, 0)), ip(fixture(t, 1))), 2, opts))
	require.Len(t, events, 1)
	assert.Equal(t, plugins.ActionWarning, events[0].Action)
	assert.Contains(t, events[0].Message, "no server's host names zk-2, but the membership lists servers no pod runs: server.3=10.0.0.3:")
}
