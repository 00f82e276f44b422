package engines

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// zkKubelet does for the ensemble what a kubelet does for real pods: a
// pod deleted stops its pod's server, the pod created in its place starts
// it again. It records every start with the new pod's revision, and, from
// a poll of srvr every 100ms, every change of the pod that leads.
type zkKubelet struct {
	z *dbserver.ZooKeeper

	mu       sync.Mutex
	starts   []string // pod@revision
	stops    []string // pod:mode
	leaders  []string
	failures []string
	log      []string
	stop     chan struct{}
	done     sync.WaitGroup
}

func runZKKubelet(t *testing.T, b *bed, z *dbserver.ZooKeeper) *zkKubelet {
	t.Helper()
	k := &zkKubelet{z: z, stop: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	list, err := cluster.Client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	live := map[string]types.UID{}
	for _, p := range list.Items {
		live[p.Name] = p.UID
	}
	w, err := cluster.Client.CoreV1().Pods(b.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	server := func(pod string) *dbserver.ZKServer {
		o, ok := wait.PodOrdinal("zk", pod)
		if !ok || o >= len(z.Servers) {
			return nil
		}
		return z.Servers[o]
	}
	k.done.Add(2)
	go func() {
		defer k.done.Done()
		defer w.Stop()
		for {
			var ev watch.Event
			var ok bool
			select {
			case <-k.stop:
				return
			case ev, ok = <-w.ResultChan():
				if !ok {
					return
				}
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || server(p.Name) == nil {
				continue
			}
			s := server(p.Name)
			gone := ev.Type == watch.Deleted || p.DeletionTimestamp != nil
			switch {
			case gone && live[p.Name] == p.UID:
				mode := s.Mode()
				k.mu.Lock()
				k.stops = append(k.stops, p.Name+":"+mode)
				k.mu.Unlock()
				s.Stop()
				delete(live, p.Name)
				k.logf("stopped the server of %s", p.Name)
			case !gone && live[p.Name] == "" && ev.Type != watch.Deleted:
				if _, seen := live[p.Name]; seen {
					continue
				}
				live[p.Name] = p.UID
				err := s.Start()
				k.logf("started the server of %s (%s)", p.Name, wait.PodRevision(p))
				k.mu.Lock()
				k.starts = append(k.starts, p.Name+"@"+wait.PodRevision(p))
				if err != nil {
					k.failures = append(k.failures, err.Error())
				}
				k.mu.Unlock()
			}
		}
	}()
	go func() {
		defer k.done.Done()
		last := ""
		for {
			leader := ""
			var view []string
			for i, s := range z.Servers {
				mode, zxid := s.ModeZxid()
				if mode == "leader" {
					leader = fmt.Sprintf("zk-%d", i)
				}
				view = append(view, fmt.Sprintf("zk-%d %s %s", i, mode, zxid))
			}
			if v := strings.Join(view, ", "); v != last {
				k.logf("%s", v)
				last = v
			}
			k.mu.Lock()
			if leader != "" && (len(k.leaders) == 0 || k.leaders[len(k.leaders)-1] != leader) {
				k.leaders = append(k.leaders, leader)
			}
			k.mu.Unlock()
			select {
			case <-k.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return k
}

func (k *zkKubelet) logf(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = append(k.log, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// finish stops the kubelet and returns the starts, with each revision
// named old or new, the stops with the server's mode just before, and the
// leaders seen.
func (k *zkKubelet) finish(t *testing.T, oldRev, newRev string) (starts, stops, leaders []string) {
	t.Helper()
	close(k.stop)
	k.done.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	assert.Empty(t, k.failures)
	t.Logf("servers:\n%s", strings.Join(k.log, "\n"))
	for _, s := range k.starts {
		s = strings.Replace(s, "@"+oldRev, "@old", 1)
		starts = append(starts, strings.Replace(s, "@"+newRev, "@new", 1))
	}
	return starts, k.stops, k.leaders
}

// zkLeaderOn waits until exactly the server of pod zk-<want> leads and
// every server but those of down serves.
func zkLeaderOn(t *testing.T, z *dbserver.ZooKeeper, want int, down ...int) {
	t.Helper()
	modes := func() string {
		var out []string
		for _, s := range z.Servers {
			out = append(out, s.Mode())
		}
		return fmt.Sprintf("modes of zk-0..: %q", out)
	}
	e2eutil.Poll{Timeout: waitTimeout, Describe: modes}.Until(t, fmt.Sprintf("zk-%d to lead", want), func(context.Context) (bool, error) {
		for i, s := range z.Servers {
			if slices.Contains(down, i) {
				continue
			}
			m := s.Mode()
			if (i == want) != (m == "leader") || m == "" {
				return false, nil
			}
		}
		return true, nil
	})
}

// zkLeader waits until one server leads and all serve, and returns it.
func zkLeader(t *testing.T, z *dbserver.ZooKeeper) int {
	t.Helper()
	leader := -1
	e2eutil.Poll{Timeout: waitTimeout}.Until(t, "one leader, every server serving", func(context.Context) (bool, error) {
		leader = -1
		for i, s := range z.Servers {
			switch s.Mode() {
			case "leader":
				if leader >= 0 {
					return false, nil
				}
				leader = i
			case "":
				return false, nil
			}
		}
		return leader >= 0, nil
	})
	return leader
}

// zkMakeLeader moves the leadership of an ensemble of three to zk-<want>
// with ZooKeeper's own election, which picks the newest epoch, then the
// newest zxid, then the highest server id: stopping the leader makes the
// two others elect one; if that is the third server, stopping it too and
// starting the first leader again (which missed an epoch) leaves want the
// newest.
func zkMakeLeader(t *testing.T, z *dbserver.ZooKeeper, want int) {
	t.Helper()
	l := zkLeader(t, z)
	if l == want {
		return
	}
	other := 3 - l - want
	z.Servers[l].Stop()
	var now int
	e2eutil.Poll{Timeout: waitTimeout}.Until(t, "a new leader", func(context.Context) (bool, error) {
		for _, i := range []int{want, other} {
			if z.Servers[i].Mode() == "leader" {
				now = i
				return true, nil
			}
		}
		return false, nil
	})
	if now != want {
		z.Servers[other].Stop()
		require.NoError(t, z.Servers[l].Start())
		zkLeaderOn(t, z, want, other)
		require.NoError(t, z.Servers[other].Start())
	} else {
		require.NoError(t, z.Servers[l].Start())
	}
	zkLeaderOn(t, z, want)
}

// zkSameZxid writes one znode through the leader and waits until every
// server reports the same last zxid. An idle ensemble does not: a follower
// that joined a new epoch with nothing to sync reports an older zxid (0x0)
// than the leader and a restarted server (the epoch's first zxid), and the
// election, which prefers the newest zxid, then depends on which server
// restarted last. With one transaction every synced server has the same,
// and the election picks the highest server id among those that answer, as
// in an ensemble in use.
func zkSameZxid(t *testing.T, z *dbserver.ZooKeeper, leader int) {
	t.Helper()
	require.NoError(t, z.Create(z.Servers[leader], "/kubectl-sts-test", "x"))
	e2eutil.Poll{Timeout: waitTimeout}.Until(t, "every server at the same zxid", func(context.Context) (bool, error) {
		_, want := z.Servers[leader].ModeZxid()
		for _, s := range z.Servers {
			if _, zxid := s.ModeZxid(); zxid != want || zxid == "" {
				return false, nil
			}
		}
		return true, nil
	})
}

// rolloutLeaderLast runs a staged rollout of a new image, one pod per
// step, with the kubelet running, and returns its output, the starts and
// the leaders.
func rolloutLeaderLast(t *testing.T, b *bed, z *dbserver.ZooKeeper) (res e2eutil.Result, starts, stops, leaders []string) {
	t.Helper()
	client := e2eutil.Client(cluster, b.ns)
	k := runZKKubelet(t, b, z)
	oldRev := e2eutil.StatefulSet(t, cluster, b.ns, "zk").Status.CurrentRevision
	res = e2eutil.Run(t, client, 8*time.Minute, "rollout", "zk", "--staged", "--image", "db=zookeeper:3.9", "--yes")
	t.Logf("rollout (%d):\n%s\n%s", res.Code, res.Out, res.ErrOut)
	newRev := e2eutil.StatefulSet(t, cluster, b.ns, "zk").Status.UpdateRevision
	starts, stops, leaders = k.finish(t, oldRev, newRev)
	t.Logf("stops: %q; starts: %q; leaders: %q", stops, starts, leaders)
	return res, starts, stops, leaders
}

// TestZooKeeperRolloutMovesALeaderThatWouldRollFirst: zk-1 leads, so step
// 2 of 3 would roll it while zk-0 is still on the old revision. The plan
// says so; before step 2 the rollout restarts zk-1 in place, on the old
// revision, and ZooKeeper elects zk-2, already updated; zk-1 and zk-0 are
// then rolled as followers. One leader change in the whole rollout.
func TestZooKeeperRolloutMovesALeaderThatWouldRollFirst(t *testing.T) {
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 3, Reconfig: true})
	zkMakeLeader(t, z, 1)
	zkSameZxid(t, z, 1)

	client := e2eutil.Client(cluster, b.ns)
	dry := e2eutil.Run(t, client, 2*time.Minute, "rollout", "zk", "--staged", "--image", "db=zookeeper:3.9", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, dry.Code, dry.ErrOut)
	assert.Contains(t, dry.Out, "leader:     zk-1 leads and step 2 of 3 would roll it while zk-0 is still on the old revision.")
	assert.Contains(t, dry.Out, "before step 2 the rollout restarts pod zk-1 in place")

	res, starts, stops, leaders := rolloutLeaderLast(t, b, z)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Equal(t, []string{"zk-2:follower", "zk-1:leader", "zk-1:follower", "zk-0:follower"}, stops,
		"servers stopped, in order, with their mode: the leader only for the restart in place")
	assert.Equal(t, []string{"zk-2@new", "zk-1@old", "zk-1@new", "zk-0@new"}, starts, "pods restarted, in order, with their revision")
	assert.Equal(t, []string{"zk-1", "zk-2"}, leaders, "the leadership moved once, to the updated zk-2, before zk-1 was rolled")
	assert.Contains(t, res.Out, "restarting pod zk-1 in place")
	assert.Contains(t, res.Out, "zk-2 leads now, on revision")
	assert.Equal(t, 1, strings.Count(res.Out, "restarting pod"), "one extra restart")

	evs, err := cluster.Client.CoreV1().Events(b.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=RolloutLeaderRestart"})
	require.NoError(t, err)
	require.Len(t, evs.Items, 1, "the restart is recorded as an Event")
	assert.Contains(t, evs.Items[0].Message, "restarting pod zk-1 in place")
}

// TestZooKeeperRolloutLeaderAlreadyLowest: zk-0 leads, the last pod the
// rollout updates: no extra restart; the one election is at the end, when
// zk-0 is rolled and zk-2 and zk-1 are on the new revision.
func TestZooKeeperRolloutLeaderAlreadyLowest(t *testing.T) {
	b, z := newZKSet(t, dbserver.ZooKeeperOptions{Participants: 3, Reconfig: true})
	zkMakeLeader(t, z, 0)
	zkSameZxid(t, z, 0)

	client := e2eutil.Client(cluster, b.ns)
	dry := e2eutil.Run(t, client, 2*time.Minute, "rollout", "zk", "--staged", "--image", "db=zookeeper:3.9", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, dry.Code, dry.ErrOut)
	assert.Contains(t, dry.Out, "leader:     zk-0 leads and is rolled last, in step 3 of 3, when every other voter is on the new revision: no extra restart")

	res, starts, stops, leaders := rolloutLeaderLast(t, b, z)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Equal(t, []string{"zk-2:follower", "zk-1:follower", "zk-0:leader"}, stops,
		"servers stopped, in order, with their mode: the leader last")
	assert.Equal(t, []string{"zk-2@new", "zk-1@new", "zk-0@new"}, starts, "pods restarted, in order, with their revision")
	assert.Equal(t, []string{"zk-0", "zk-2"}, leaders, "zk-0 led until it was rolled last")
	assert.NotContains(t, res.Out, "restarting pod")
}
