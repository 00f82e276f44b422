package redis

import (
	"context"
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

// Fixtures: INFO recorded on Redis 7.0, a primary and its replica.
func read(t *testing.T, name string) string {
	t.Helper()
	return strings.ReplaceAll(pluginstest.Testdata(t, name), "\n", "\r\n") // as redis-cli prints it
}

func target(ex kube.Executor, pods ...string) plugins.Target {
	return pluginstest.Target(ex, "redis", corev1.Container{Name: "redis", Image: "redis:7"}, pods...)
}

func TestMembersFromRecordedInfo(t *testing.T) {
	_, ex := kubefake.NewClient()
	primary := strings.Replace(read(t, "primary.txt"), "master_repl_offset:50", "master_repl_offset:1074", 1)
	ex.Handle("redis-0", kubefake.Reply(primary, 0))
	ex.Handle("redis-1", kubefake.Reply(read(t, "replica.txt"), 0))
	ex.Handle("redis-2", kubefake.Reply("NOAUTH Authentication required.\r\n", 0))
	members, err := New().Members(context.Background(), target(ex, "redis-0", "redis-1", "redis-2"))
	require.NoError(t, err)
	require.Len(t, members, 3)

	assert.Equal(t, plugins.RolePrimary, members[0].Role)
	assert.Equal(t, "master", members[0].State)
	assert.Equal(t, "1", members[0].Details["connectedReplicas"])
	assert.Equal(t, "1074", members[0].Details["offset"])

	r := members[1]
	assert.Equal(t, plugins.RoleReplica, r.Role)
	assert.Equal(t, "link up", r.State)
	require.NotNil(t, r.LagBytes)
	assert.Equal(t, int64(1024), *r.LagBytes, "primary offset 1074 minus replica offset 50")
	assert.Equal(t, "50", r.Details["offset"])
	assert.Equal(t, "127.0.0.1:33147", r.Details["source"])
	assert.Nil(t, r.LagSeconds)

	assert.Equal(t, plugins.RoleUnknown, members[2].Role)
	assert.Equal(t, "pod redis-2: redis answered: NOAUTH Authentication required.", members[2].Error)

	for _, c := range ex.Calls() {
		assert.Equal(t, "INFO", c.Command[len(c.Command)-1])
	}

	ok, reason := New().Healthy(members[:2], plugins.HealthOptions{MaxLagBytes: 512})
	assert.False(t, ok)
	assert.Equal(t, "redis-1: 1024 bytes behind (bound 512)", reason)
	ok, _ = New().Healthy(members[:2], plugins.HealthOptions{MaxLagBytes: 2048})
	assert.True(t, ok)
	ok, reason = New().Healthy(members[:2], plugins.HealthOptions{MaxLagSeconds: 5})
	assert.False(t, ok, "Redis measures no seconds")
	assert.Contains(t, reason, "lag in seconds unknown")
}

func TestLinkDownAndForeignPrimary(t *testing.T) {
	infos := map[string]map[string]string{
		"redis-0": ParseInfo(read(t, "primary.txt")),
		"redis-1": ParseInfo(strings.Replace(read(t, "replica.txt"), "master_link_status:up", "master_link_status:down", 1)),
		"redis-2": ParseInfo(strings.Replace(read(t, "replica.txt"), "master_replid:92b6", "master_replid:ffff", 1)),
	}
	members := []plugins.Member{{Pod: "redis-0"}, {Pod: "redis-1"}, {Pod: "redis-2"}}
	Assemble(members, infos)
	assert.Equal(t, "link down", members[1].State)
	assert.Nil(t, members[1].LagBytes, "no lag while the link is down")
	assert.Nil(t, members[2].LagBytes, "replicates from a primary that did not answer")
	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "redis-1 replication link down", reason)
}

const clusterNodes = `e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 10.0.0.10:6379@16379,redis-0 myself,master - 0 0 1 connected 0-5460
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 10.0.0.11:6379@16379 master - 0 1426238316232 2 connected 5461-10922 [10923->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 10.0.0.12:6379@16379 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317741 1 connected
`

func TestParseClusterNodes(t *testing.T) {
	nodes, err := ParseClusterNodes(clusterNodes)
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	assert.True(t, nodes[0].Myself)
	assert.True(t, nodes[0].Master)
	assert.Equal(t, []string{"0-5460"}, nodes[0].Slots)
	assert.Equal(t, []string{"5461-10922", "[10923->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]"}, nodes[1].Slots)
	assert.False(t, nodes[2].Master)
	assert.Empty(t, nodes[2].Slots)
	_, err = ParseClusterNodes("short line")
	assert.Error(t, err)
}

func TestBeforeRemoveInClusterMode(t *testing.T) {
	_, ex := kubefake.NewClient()
	clusterInfo := func(role string) string {
		return "# Replication\r\nrole:" + role + "\r\nmaster_link_status:up\r\nslave_repl_offset:10\r\n" +
			"master_replid:abc\r\nmaster_repl_offset:10\r\n# Cluster\r\ncluster_enabled:1\r\n"
	}
	nodesOf := func(myself int) string {
		lines := strings.Split(strings.TrimSpace(clusterNodes), "\n")
		for i := range lines {
			lines[i] = strings.Replace(lines[i], "myself,", "", 1)
		}
		f := strings.Fields(lines[myself])
		f[2] = "myself," + f[2]
		lines[myself] = strings.Join(f, " ")
		return strings.Join(lines, "\n") + "\n"
	}
	for i, role := range []string{"master", "master", "slave"} {
		info, nodes := clusterInfo(role), nodesOf(i)
		ex.Handle("redis-"+string(rune('0'+i)), func(req kube.ExecRequest) (kube.ExecResult, error) {
			if req.Command[len(req.Command)-1] == "NODES" {
				return kube.ExecResult{Stdout: []byte(nodes)}, nil
			}
			return kube.ExecResult{Stdout: []byte(info)}, nil
		})
	}
	tg := target(ex, "redis-0", "redis-1", "redis-2")
	members, err := New().Members(context.Background(), tg)
	require.NoError(t, err)
	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.True(t, ok, "two primaries are normal in cluster mode: %s", reason)

	err = New().BeforeRemove(context.Background(), tg, 1, plugins.RemoveOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pod redis-1 is cluster node 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 and owns hash slots 5461-10922")
	assert.Contains(t, err.Error(), "redis-cli --cluster reshard")

	var events []plugins.RemoveEvent
	require.NoError(t, New().BeforeRemove(context.Background(), tg, 2, plugins.RemoveOptions{Events: func(e plugins.RemoveEvent) { events = append(events, e) }}))
	require.Len(t, events, 1)
	assert.Contains(t, events[0].Message, "owns no hash slots")
	assert.Contains(t, events[0].Message, "del-node <host:port> 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f")
}

func TestBeforeRemoveRefusesThePrimary(t *testing.T) {
	_, ex := kubefake.NewClient()
	ex.Handle("redis-0", kubefake.Reply(read(t, "primary.txt"), 0))
	ex.Handle("redis-1", kubefake.Reply(read(t, "replica.txt"), 0))
	tg := target(ex, "redis-0", "redis-1")
	assert.ErrorContains(t, New().BeforeRemove(context.Background(), tg, 0, plugins.RemoveOptions{}), "pod redis-0 is the primary")
	assert.NoError(t, New().BeforeRemove(context.Background(), tg, 1, plugins.RemoveOptions{}))
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"redis:7", "bitnami/redis-cluster:7.2", "valkey/valkey:8", "redis/redis-stack-server:7.2.0-v9"},
		[]string{"bitnami/redis-sentinel:7", "oliver006/redis_exporter", "bitnami/redis-exporter"})
}

func TestCLIScriptMapsTheContainersCredentials(t *testing.T) {
	path := pluginstest.FakeProgram(t, "redis-cli", "REDISCLI_AUTH")
	got := pluginstest.RunScript(t, append(path, "REDIS_PASSWORD=s3cret", "REDIS_PORT_NUMBER=6380"), command("INFO"))
	assert.Equal(t, []string{"--no-auth-warning", "-p", "6380", "INFO"}, got["arg"])
	assert.Equal(t, []string{"s3cret"}, got["REDISCLI_AUTH"])
	got = pluginstest.RunScript(t, append(path, "REDISCLI_AUTH=own", "REDIS_PASSWORD=other"), command("INFO"))
	assert.Equal(t, []string{"own"}, got["REDISCLI_AUTH"])
	assert.Equal(t, "6379", got["arg"][2])
	got = pluginstest.RunScript(t, path, command("INFO"))
	assert.Equal(t, []string{"<unset>"}, got["REDISCLI_AUTH"], "an empty password would make redis-cli send AUTH")
}

// FuzzCLIScriptPassesArgumentsVerbatim: arguments reach redis-cli as they
// are.
func FuzzCLIScriptPassesArgumentsVerbatim(f *testing.F) {
	for _, seed := range []string{"INFO", "$(id)", "`id`", "\"'", "-h evil", "*"} {
		f.Add(seed)
	}
	path := pluginstest.FakeProgram(f, "redis-cli", "REDISCLI_AUTH")
	f.Fuzz(func(t *testing.T, arg string) {
		if strings.ContainsRune(arg, 0) {
			return
		}
		args := pluginstest.RunScript(t, path, command("CLUSTER", arg))["arg"]
		if len(args) != 5 || args[4] != arg {
			t.Fatalf("redis-cli got %q, want %q last", args, arg)
		}
	})
}

func TestBeforeRemoveRefusesAClusterNodeThatDoesNotAnswer(t *testing.T) {
	_, ex := kubefake.NewClient()
	info := "# Replication\r\nrole:master\r\nmaster_replid:abc\r\nmaster_repl_offset:10\r\n# Cluster\r\ncluster_enabled:1\r\n"
	ex.Handle("redis-0", kubefake.Reply(info, 0))
	ex.Handle("redis-1", kubefake.Reply(info, 0))
	ex.Handle("redis-2", kubefake.Reply("", 1))
	tg := target(ex, "redis-0", "redis-1", "redis-2")
	err := New().BeforeRemove(context.Background(), tg, 2, plugins.RemoveOptions{})
	require.Error(t, err, "it may own hash slots")
	assert.Contains(t, err.Error(), "cannot tell whether pod redis-2 owns hash slots")
	require.NoError(t, New().BeforeRemove(context.Background(), tg, 5, plugins.RemoveOptions{}), "a pod that is already gone")
}
