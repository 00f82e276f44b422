package engines

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

func newZKSet(t *testing.T, opts dbserver.ZooKeeperOptions) (*bed, *dbserver.ZooKeeper) {
	t.Helper()
	z := dbserver.StartZooKeeper(t, opts)
	var envs []map[string]string
	for _, s := range z.Servers {
		envs = append(envs, z.Env(s))
	}
	return newBed(t, "zk", "zookeeper:3.8", envs), z
}

func zkReport(t *testing.T, ns string) (status.Report, int) {
	t.Helper()
	out, code := runStatus(t, ns, "zk", "-o", "json")
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.NotNil(t, r.Engine, out)
	require.Equal(t, "zookeeper", r.Engine.Name)
	return r, code
}

// TestZooKeeperStatusAndScaleDownToTwoRefused: an ensemble of three with
// dynamic reconfiguration: roles and zxid lag in status; 3 → 2 refused.
func TestZooKeeperStatusAndScaleDownToTwoRefused(t *testing.T) {
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 3, Reconfig: true})
	r, code := zkReport(t, b.ns)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
	require.Len(t, r.Members, 3)
	leaders := 0
	for _, m := range r.Members {
		switch m.Role {
		case plugins.RolePrimary:
			leaders++
			assert.Equal(t, "leader", m.State)
			assert.Equal(t, "2", m.Details["synced_followers"])
		case plugins.RoleReplica:
			assert.Equal(t, "follower", m.State)
		default:
			t.Errorf("%s has role %s", m.Pod, m.Role)
		}
		assert.Equal(t, "0", m.Details["zxidLag"], m.Pod)
		assert.Equal(t, "enabled", m.Details["reconfig"], m.Pod)
		assert.Regexp(t, `^0x[0-9a-f]+$`, m.Details["zxid"])
	}
	assert.Equal(t, 1, leaders)

	res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 2*time.Minute, "scale-down", "zk", "--replicas", "2", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "with 2 voters zookeeper needs both for quorum (2): losing either member, even for a restart, stops writes")
	got, err := z.Servers[0].Membership()
	require.NoError(t, err)
	assert.Equal(t, []string{"server.1", "server.2", "server.3"}, got, "nothing was changed")
}

// TestZooKeeperScaleDownFiveToThree: reconfig -remove of server.5 and
// server.4 before their pods go; the three that stay keep a leader.
func TestZooKeeperScaleDownFiveToThree(t *testing.T) {
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 5, Reconfig: true})
	res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 4*time.Minute, "scale-down", "zk", "--replicas", "3", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	for _, id := range []int{5, 4} {
		assert.Contains(t, res.Out, fmt.Sprintf("removed server.%d", id))
	}
	for _, s := range z.Servers[:3] {
		got, err := s.Membership()
		require.NoError(t, err)
		assert.Equal(t, []string{"server.1", "server.2", "server.3"}, got, "server.%d", s.ID)
	}
	r, code := zkReport(t, b.ns)
	assert.Equal(t, cmdutil.ExitOK, code, "every server that stays serves again before the command ends: %+v", r.Engine)
	assert.Len(t, r.Members, 3)
}

// zkObservers starts three participants (zk-0..zk-2) and two observers
// (zk-3, zk-4) and checks their roles in status.
func zkObservers(t *testing.T, reconfig bool) (*bed, *dbserver.ZooKeeper) {
	t.Helper()
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 3, Observers: 2, Reconfig: reconfig})
	r, code := zkReport(t, b.ns)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
	require.Len(t, r.Members, 5)
	for _, m := range r.Members[3:] {
		assert.Equal(t, plugins.RoleLearner, m.Role, m.Pod)
		assert.Equal(t, "observer", m.State, m.Pod)
		assert.Equal(t, "0", m.Details["zxidLag"], m.Pod)
	}
	return b, z
}

// TestZooKeeperStaticMembershipRefusedBeforeAnythingChanges: without
// dynamic reconfiguration, a scale-down is refused in the preflight, with
// the manual steps, whether it removes participants or only observers
// (whose server.N lines would stay in every server's configuration).
func TestZooKeeperStaticMembershipRefusedBeforeAnythingChanges(t *testing.T) {
	b, z := zkObservers(t, false)
	for _, replicas := range []string{"3", "4"} {
		res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 2*time.Minute, "scale-down", "zk", "--replicas", replicas, "--yes")
		assert.Equal(t, cmdutil.ExitFailed, res.Code, res.Out)
		assert.Contains(t, res.ErrOut, "refusing to change statefulset zk; nothing was changed")
		assert.Contains(t, res.ErrOut, "dynamic reconfiguration is off (reconfigEnabled=false)")
		assert.NotContains(t, res.Out, "removing zk-", "no step started")
		assert.Equal(t, int32(5), *e2eutil.StatefulSet(t, cluster, b.ns, "zk").Spec.Replicas)
		got, err := z.Servers[0].Membership()
		require.NoError(t, err)
		assert.Equal(t, []string{"server.1", "server.2", "server.3", "server.4", "server.5"}, got, "nothing was changed")
	}
}

// TestZooKeeperScaleDownRemovesObservers: with dynamic reconfiguration,
// 5 → 3 removes the two observers with reconfig -remove; the record says
// the voters, and so the quorum, do not change.
func TestZooKeeperScaleDownRemovesObservers(t *testing.T) {
	b, z := zkObservers(t, true)
	res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 4*time.Minute, "scale-down", "zk", "--replicas", "3", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	for _, id := range []int{5, 4} {
		assert.Contains(t, res.Out, fmt.Sprintf("server.%d (zk-%d) is an observer: the 3 voters and the quorum of 2 do not change", id, id-1))
		assert.Contains(t, res.Out, fmt.Sprintf("removed server.%d", id))
	}
	assert.NotContains(t, res.Out, "leaves 2 voters")
	for _, s := range z.Servers[:3] {
		got, err := s.Membership()
		require.NoError(t, err)
		assert.Equal(t, []string{"server.1", "server.2", "server.3"}, got, "server.%d", s.ID)
	}
	r, code := zkReport(t, b.ns)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
	assert.Len(t, r.Members, 3)
}

// TestZooKeeperDownServerWhoseHostNamesNoPod: the servers' hosts are IP
// addresses, so a pod maps to its server by the id the server answers
// with. When zk-4's server stops, which server it runs cannot be told: a
// scale-down removing it is refused before anything changes, rather than
// taking it for a server already removed and leaving server.5 behind as a
// voter that never answers.
func TestZooKeeperDownServerWhoseHostNamesNoPod(t *testing.T) {
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 5, Reconfig: true})
	z.Servers[4].Stop()
	// server.5 led (the highest id): the four left elect another leader.
	zkLeader(t, &dbserver.ZooKeeper{Servers: z.Servers[:4]})
	res := e2eutil.Run(t, e2eutil.Client(cluster, b.ns), 2*time.Minute, "scale-down", "zk", "--replicas", "4", "--yes", "--force")
	assert.Equal(t, cmdutil.ExitFailed, res.Code, res.Out)
	assert.Contains(t, res.ErrOut, "refusing to change statefulset zk; nothing was changed")
	assert.Contains(t, res.ErrOut, "zk-4 does not answer, and the membership lists server.5=127.0.0.1:")
	assert.NotContains(t, res.Out, "already removed")
	assert.Equal(t, int32(5), *e2eutil.StatefulSet(t, cluster, b.ns, "zk").Spec.Replicas)
	got, err := z.Servers[0].Membership()
	require.NoError(t, err)
	assert.Equal(t, []string{"server.1", "server.2", "server.3", "server.4", "server.5"}, got, "nothing was changed")
}
