package engines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

const etcdImage = "quay.io/coreos/etcd:v3.6.16"

// etcdSet is a StatefulSet "etcd" of n pods, pod i mapped to a real etcd
// member named etcd-i.
type etcdSet struct {
	*bed
	etcd *dbserver.Etcd
}

func newEtcdSet(t *testing.T, n int) *etcdSet {
	t.Helper()
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("etcd-%d", i))
	}
	c := dbserver.StartEtcd(t, names...)
	var envs []map[string]string
	for _, m := range c.Members {
		envs = append(envs, c.Env(m))
	}
	return &etcdSet{bed: newBed(t, "etcd", etcdImage, envs), etcd: c}
}

func (s *etcdSet) run(t *testing.T, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.Run(t, e2eutil.Client(cluster, s.ns), 4*time.Minute, args...)
}

func (s *etcdSet) report(t *testing.T) (status.Report, int) {
	t.Helper()
	out, code := runStatus(t, s.ns, "etcd", "-o", "json")
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.NotNil(t, r.Engine, out)
	require.Equal(t, "etcd", r.Engine.Name)
	return r, code
}

func (s *etcdSet) memberNames(t *testing.T, m *dbserver.EtcdMember) []string {
	t.Helper()
	names, err := s.etcd.MemberNames(m)
	require.NoError(t, err)
	return names
}

func TestEtcdStatusAndAStoppedMember(t *testing.T) {
	s := newEtcdSet(t, 3)
	require.NoError(t, s.etcd.MoveLeader(s.etcd.Members[0]))

	r, code := s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code)
	assert.True(t, r.Engine.Healthy, "%+v", r.Engine)
	require.Len(t, r.Members, 3)
	assert.Equal(t, plugins.RolePrimary, r.Members[0].Role)
	assert.Equal(t, "leader", r.Members[0].State)
	for _, m := range r.Members[1:] {
		assert.Equal(t, plugins.RoleReplica, m.Role, m.Pod)
		assert.Equal(t, "follower", m.State, m.Pod)
		assert.Equal(t, r.Members[0].Details["id"], m.Details["leader"], m.Pod)
	}
	for _, m := range r.Members {
		for _, k := range []string{"id", "peerURLs", "raftTerm", "appliedIndex", "indexLag", "dbSize", "dbSizeInUse", "version"} {
			assert.NotEmpty(t, m.Details[k], "%s: %s", m.Pod, k)
		}
		assert.Equal(t, "3.6.16", m.Details["version"])
		assert.Contains(t, m.Details["peerURLs"], "http://127.0.0.1:")
	}
	table, _ := runStatus(t, s.ns, "etcd")
	t.Logf("table:\n%s", table)
	assert.Regexp(t, `(?m)^etcd-0\s.*\bprimary\b`, table)
	assert.Regexp(t, `(?m)^etcd-2\s.*\breplica\b`, table)

	// A member stops: Degraded, and no rollout starts.
	s.etcd.Members[2].Stop()
	r, code = s.report(t)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	assert.False(t, r.Engine.Healthy)
	assert.Contains(t, r.Engine.Reason, "no answer from etcd-2")
	assert.Equal(t, plugins.RoleUnknown, r.Members[2].Role)

	res := s.run(t, "rollout", "etcd", "--staged", "--image", "db=quay.io/coreos/etcd:v3.6.17", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "the etcd cluster has already lost etcd-2: 2 of 3 voters answer and quorum is 2, so restarting another member would leave 1")
	sts := e2eutil.StatefulSet(t, cluster, s.ns, "etcd")
	assert.Equal(t, etcdImage, sts.Spec.Template.Spec.Containers[1].Image, "nothing was changed")
}

// TestEtcdScaleDownRefusals: quorum arithmetic with numbers, on real
// members, and nothing changed.
func TestEtcdScaleDownRefusals(t *testing.T) {
	s := newEtcdSet(t, 3)
	s.etcd.Members[0].Stop()
	res := s.run(t, "scale-down", "etcd", "--replicas", "1", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "removing etcd-2 leaves 2 voters of which 1 answer (etcd-1), below the quorum of 2: the etcd cluster would stop accepting writes; bring back etcd-0 first")
	assert.NotContains(t, res.ErrOut, "--force", "a quorum refusal cannot be forced")
	res = s.run(t, "scale-down", "etcd", "--replicas", "1", "--yes", "--force")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "below the quorum of 2")
	assert.Equal(t, []string{"etcd-0", "etcd-1", "etcd-2"}, sortedStrings(s.memberNames(t, s.etcd.Members[1])))
	assert.Equal(t, int32(3), *e2eutil.StatefulSet(t, cluster, s.ns, "etcd").Spec.Replicas)

	// With every member back, 3 → 2 is refused for what two members risk.
	s.etcd.Restart(t, s.etcd.Members[0])
	waitHealthy(t, s)
	res = s.run(t, "scale-down", "etcd", "--replicas", "2", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "with 2 voters etcd needs both for quorum (2): losing either member, even for a restart, stops writes")
	assert.Len(t, s.memberNames(t, s.etcd.Members[1]), 3)
}

func waitHealthy(t *testing.T, s *etcdSet) {
	t.Helper()
	e2eutil.Poll{Timeout: waitTimeout}.Until(t, "etcd to be healthy", func(ctx context.Context) (bool, error) {
		r, _ := s.report(t)
		return r.Engine.Healthy, nil
	})
}

func sortedStrings(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// quorumWatch asks the members that stay for endpoint status every 100ms
// while a scale-down runs, and records every distinct membership it sees.
type quorumWatch struct {
	mu          sync.Mutex
	polls       int
	failures    []string
	memberships []string
	stop        chan struct{}
	done        chan struct{}
}

func watchQuorum(s *etcdSet, staying []*dbserver.EtcdMember) *quorumWatch {
	w := &quorumWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, err := s.etcd.Status(staying...)
			names, lerr := s.etcd.MemberNames(staying[0])
			w.mu.Lock()
			w.polls++
			if err != nil {
				w.failures = append(w.failures, err.Error())
			}
			if lerr == nil {
				m := strings.Join(sortedStrings(names), ",")
				if len(w.memberships) == 0 || w.memberships[len(w.memberships)-1] != m {
					w.memberships = append(w.memberships, m)
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *quorumWatch) finish() {
	close(w.stop)
	<-w.done
}

// TestEtcdScaleDownFiveToThree: refused with one member down (5 → 2, and
// 5 → 3 while the member down stays), then
// 5 → 3 removes exactly etcd-4 and etcd-3 from the membership, before their
// pods, and the members that stay answer with one leader throughout.
func TestEtcdScaleDownFiveToThree(t *testing.T) {
	s := newEtcdSet(t, 5)
	s.etcd.Members[1].Stop()
	res := s.run(t, "scale-down", "etcd", "--replicas", "2", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "removing etcd-2 leaves 2 voters of which 1 answer (etcd-0), below the quorum of 2")
	assert.Contains(t, res.ErrOut, "with 2 voters etcd needs both for quorum (2)")
	assert.Len(t, s.memberNames(t, s.etcd.Members[0]), 5, "nothing was changed")
	// 5 → 3 keeps quorum at every step (4 voters of which 3 answer, then 3
	// of which 2), but uses up the one failure the cluster tolerates while
	// etcd-1 is down: refused before anything changes, even with --force
	// (which passes the unhealthy set's health check only).
	res = s.run(t, "scale-down", "etcd", "--replicas", "3", "--yes", "--force")
	assert.Equal(t, cmdutil.ExitFailed, res.Code, res.Out)
	assert.Contains(t, res.ErrOut, "removing etcd-4 leaves 4 voters of which 3 answer (etcd-0, etcd-2, etcd-3), only the quorum of 3, while etcd-1 does not answer")
	assert.Len(t, s.memberNames(t, s.etcd.Members[0]), 5, "nothing was changed")
	assert.Equal(t, int32(5), *e2eutil.StatefulSet(t, cluster, s.ns, "etcd").Spec.Replicas)
	s.etcd.Restart(t, s.etcd.Members[1])
	waitHealthy(t, s)

	// etcd-0 leads throughout, so every poll must see it (the leader moving
	// away from a removed member is exercised in the test below).
	require.NoError(t, s.etcd.MoveLeader(s.etcd.Members[0]))
	staying := s.etcd.Members[:3]
	w := watchQuorum(s, staying)
	res = s.run(t, "scale-down", "etcd", "--replicas", "3", "--yes")
	w.finish()
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "removed member")

	assert.Equal(t, []string{"etcd-0", "etcd-1", "etcd-2"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])))
	st, err := s.etcd.Status(staying...)
	require.NoError(t, err, "endpoint status of the members that stay")
	assert.Len(t, st, 3)
	assert.Eventually(t, func() bool { return s.etcd.Members[3].Exited() && s.etcd.Members[4].Exited() }, 30*time.Second, 100*time.Millisecond,
		"removed members stop by themselves")

	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d polls; memberships seen: %q", w.polls, w.memberships)
	assert.Greater(t, w.polls, 5)
	assert.Empty(t, w.failures, "the members that stay always answered, all following etcd-0")
	assert.Equal(t, []string{
		"etcd-0,etcd-1,etcd-2,etcd-3,etcd-4",
		"etcd-0,etcd-1,etcd-2,etcd-3",
		"etcd-0,etcd-1,etcd-2",
	}, w.memberships, "one member at a time, highest first")
	pods, err := cluster.Client.CoreV1().Pods(s.ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, pods.Items, 3)

	r, code := s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
}

// TestEtcdScaleDownKilledAfterMemberRemoveResumes: the member to remove
// leads, so the plugin moves the leadership first; it is killed (SIGKILL)
// right after `member remove`, before the pod's removal; the next run does
// not remove the member again and finishes the scale-down.
func TestEtcdScaleDownKilledAfterMemberRemoveResumes(t *testing.T) {
	s := newEtcdSet(t, 4)
	require.NoError(t, s.etcd.MoveLeader(s.etcd.Members[3]))
	bin := e2eutil.BuildPlugin(t)
	moved := false
	e2eutil.KillAt(t, cluster, bin, s.ns, 4*time.Minute, "removed the member", func(ev progress.Event) bool {
		if !strings.HasPrefix(ev.Kind, "engine-") {
			return false
		}
		t.Logf("%s: %s", ev.Kind, ev.Message)
		moved = moved || strings.Contains(ev.Message, "moved the leadership from etcd-3")
		return ev.Kind == "engine-changed" && strings.Contains(ev.Message, "removed member")
	}, "scale-down", "etcd", "--replicas", "3", "--yes", "-o", "json")
	assert.True(t, moved, "etcd-3 led: the leadership moved to a member that stays first")

	assert.Equal(t, []string{"etcd-0", "etcd-1", "etcd-2"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])), "the member is gone")
	_, err := cluster.Client.CoreV1().Pods(s.ns).Get(context.Background(), "etcd-3", metav1.GetOptions{})
	require.NoError(t, err, "killed before the pod's removal")
	assert.Equal(t, int32(4), *e2eutil.StatefulSet(t, cluster, s.ns, "etcd").Spec.Replicas)

	// Status names the pod whose member is no longer in the membership.
	r, code := s.report(t)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	assert.Contains(t, r.Engine.Reason, "etcd-3")

	rec, err := journal.New(cluster.Client, s.ns, "etcd", "test").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	time.Sleep(time.Until(rec.Heartbeat.Add(journal.DefaultLeaseDuration + time.Second)))
	res := s.run(t, "scale-down", "etcd", "--replicas", "3", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "already removed")
	assert.NotContains(t, res.Out, "removed member", "no member is removed twice")
	assert.Equal(t, []string{"etcd-0", "etcd-1", "etcd-2"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])))
	_, err = s.etcd.Status(s.etcd.Members[:3]...)
	require.NoError(t, err)
	r, code = s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
}

// TestEtcdRolloutGate: a staged rollout passes the etcd gate on a healthy
// cluster, and rolls back when a member stops answering and falls behind.
func TestEtcdRolloutGate(t *testing.T) {
	s := newEtcdSet(t, 3)
	res := s.run(t, "rollout", "etcd", "--staged", "--image", "db=quay.io/coreos/etcd:v3.6.17", "--steps", "1,100%", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "etcd reports the replica set healthy")

	// The next rollout: after its first step, etcd-0 freezes while writes
	// go on, so it stays behind; the gate of step 2 never passes. It must
	// be a follower when it freezes: a frozen leader would stall the writes
	// below until the others elect a new one.
	require.NoError(t, s.etcd.MoveLeader(s.etcd.Members[1]))
	client := e2eutil.Client(cluster, s.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out := &signalWriter{want: "step 1 of 2 passed", seen: make(chan struct{})}
	f := e2eutil.Fake(client)
	f.Options.Out = out
	done := make(chan int, 1)
	go func() {
		done <- f.Run(ctx, cmd.Run, "rollout", "etcd", "--staged", "--image", "db=quay.io/coreos/etcd:v3.6.18", "--steps", "1,100%", "--step-timeout", "15s", "--yes")
	}()
	select {
	case <-out.seen:
	case code := <-done:
		t.Fatalf("rollout ended (%d) before its first step passed:\n%s\n%s", code, out.String(), f.ErrOut)
	}
	s.etcd.Members[0].Pause()
	defer s.etcd.Members[0].Resume()
	for i := 0; i < 20; i++ {
		require.NoError(t, s.etcd.Put(s.etcd.Members[1], fmt.Sprintf("k%d", i), "v"))
	}
	code := <-done
	t.Logf("rollout:\n%s\n%s", out.String(), f.ErrOut)
	assert.Equal(t, cmdutil.ExitRolledBack, code)
	assert.Contains(t, f.ErrOut.String()+out.String(), "no answer from etcd-0")
	sts := e2eutil.StatefulSet(t, cluster, s.ns, "etcd")
	assert.Equal(t, "quay.io/coreos/etcd:v3.6.17", sts.Spec.Template.Spec.Containers[1].Image, "rolled back to the previous template")
}

// signalWriter collects output and closes seen once want was written.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestEtcdMemberNamesNotLikePods: members named infra0..infra4, with peer
// URLs that name no pod, map to their pods by the ID each pod's member
// answers with. When one stops, which member its pod runs cannot be told:
// a scale-down removing that pod is refused before anything changes,
// rather than taking the pod for one already removed and leaving its
// member in the membership as a voter that never answers.
func TestEtcdMemberNamesNotLikePods(t *testing.T) {
	c := dbserver.StartEtcd(t, "infra0", "infra1", "infra2", "infra3", "infra4")
	var envs []map[string]string
	for _, m := range c.Members {
		envs = append(envs, c.Env(m))
	}
	s := &etcdSet{bed: newBed(t, "etcd", etcdImage, envs), etcd: c}
	r, code := s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)

	require.NoError(t, s.etcd.MoveLeader(s.etcd.Members[0]))
	s.etcd.Members[4].Stop()
	r, code = s.report(t)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	assert.Contains(t, r.Engine.Reason, "no answer from etcd-4")

	res := s.run(t, "scale-down", "etcd", "--replicas", "4", "--yes", "--force")
	assert.Equal(t, cmdutil.ExitFailed, res.Code, res.Out)
	assert.Contains(t, res.ErrOut, "refusing to change statefulset etcd; nothing was changed")
	assert.Contains(t, res.ErrOut, "etcd-4 does not answer, and the membership lists infra4 (id ")
	assert.NotContains(t, res.Out, "already removed")
	assert.Equal(t, []string{"infra0", "infra1", "infra2", "infra3", "infra4"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])))
	assert.Equal(t, int32(5), *e2eutil.StatefulSet(t, cluster, s.ns, "etcd").Spec.Replicas)

	// Back: the member answers with its ID, and 5 → 3 removes exactly
	// infra4 and infra3.
	s.etcd.Restart(t, s.etcd.Members[4])
	waitHealthy(t, s)
	res = s.run(t, "scale-down", "etcd", "--replicas", "3", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Equal(t, []string{"infra0", "infra1", "infra2"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])))
	r, code = s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
}

// TestEtcdScaleDownRemovesALearner: three voters and a learner (etcd-3):
// status names the learner; 4 → 3 removes it with member remove, without
// a leadership move, and the record says the voters and quorum stay.
func TestEtcdScaleDownRemovesALearner(t *testing.T) {
	c := dbserver.StartEtcd(t, "etcd-0", "etcd-1", "etcd-2")
	c.AddLearner(t, "etcd-3")
	var envs []map[string]string
	for _, m := range c.Members {
		envs = append(envs, c.Env(m))
	}
	s := &etcdSet{bed: newBed(t, "etcd", etcdImage, envs), etcd: c}
	r, code := s.report(t)
	assert.Equal(t, cmdutil.ExitDegraded, code)
	require.Len(t, r.Members, 4)
	assert.Equal(t, plugins.RoleLearner, r.Members[3].Role)
	assert.Contains(t, r.Engine.Reason, "etcd-3 is a learner: promote it")

	res := s.run(t, "scale-down", "etcd", "--replicas", "3", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "(etcd-3) is a learner: the 3 voters and the quorum of 2 do not change")
	assert.Contains(t, res.Out, "removed member")
	assert.NotContains(t, res.Out, "leadership")
	assert.Equal(t, []string{"etcd-0", "etcd-1", "etcd-2"}, sortedStrings(s.memberNames(t, s.etcd.Members[0])))
	r, code = s.report(t)
	assert.Equal(t, cmdutil.ExitOK, code, "%+v", r.Engine)
}
