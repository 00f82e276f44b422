package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
)

func TestImageName(t *testing.T) {
	cases := map[string]string{
		"postgres":                                          "postgres",
		"postgres:16":                                       "postgres",
		"docker.io/library/postgres:16.2-alpine":            "postgres",
		"localhost:5000/team/Redis:7@sha256:0123":           "redis",
		"registry.opensource.zalan.do/acid/spilo-16:3.2-p2": "spilo-16",
		"ghcr.io/cloudnative-pg/postgresql@sha256:abc":      "postgresql",
	}
	for in, want := range cases {
		assert.Equal(t, want, plugins.ImageName(in), in)
	}
}

func TestMatchImage(t *testing.T) {
	assert.True(t, plugins.MatchImage("bitnami/postgresql-repmgr:15", "postgresql"))
	assert.True(t, plugins.MatchImage("timescale/timescaledb-ha:pg16", "timescaledb"))
	assert.False(t, plugins.MatchImage("prometheuscommunity/postgres-exporter:v0.15", "postgres"), "exporters are not databases")
	assert.False(t, plugins.MatchImage("bitnami/redis-sentinel:7", "redis"), "sentinels hold no data")
	assert.False(t, plugins.MatchImage("mypostgres:1", "postgres"), "only whole tokens match")
	assert.False(t, plugins.MatchImage("", "postgres"))
}

// fakeEngine matches images by exact name and answers from fields.
type fakeEngine struct {
	name    string
	image   string
	members []plugins.Member
	err     error
	calls   atomic.Int32
}

func (f *fakeEngine) Name() string              { return f.name }
func (f *fakeEngine) Aliases() []string         { return []string{f.name + "-alias"} }
func (f *fakeEngine) Matches(image string) bool { return plugins.ImageName(image) == f.image }
func (f *fakeEngine) Members(context.Context, plugins.Target) ([]plugins.Member, error) {
	f.calls.Add(1)
	return f.members, f.err
}
func (f *fakeEngine) Healthy(ms []plugins.Member, _ plugins.HealthOptions) (bool, string) {
	if r := plugins.Unanswered(ms); r != "" {
		return false, r
	}
	return true, ""
}
func (f *fakeEngine) BeforeRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
func (f *fakeEngine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}

func sts(annotations map[string]string, images ...string) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", Annotations: annotations}}
	for i, img := range images {
		s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return s
}

func TestRegistryDetect(t *testing.T) {
	pg := &fakeEngine{name: "postgres", image: "postgres"}
	rd := &fakeEngine{name: "redis", image: "redis"}
	reg := plugins.NewRegistry(pg, rd)
	assert.Equal(t, []string{"postgres", "redis"}, reg.Names())

	cases := []struct {
		name     string
		sts      *appsv1.StatefulSet
		explicit string
		want     plugins.Engine
		errLike  string
	}{
		{"image", sts(nil, "docker.io/library/postgres:16"), "", pg, ""},
		{"auto is the default", sts(nil, "redis:7"), "auto", rd, ""},
		{"first matching container wins", sts(nil, "busybox", "redis:7", "postgres:16"), "", rd, ""},
		{"no match", sts(nil, "nginx"), "", nil, ""},
		{"explicit none beats the image", sts(nil, "postgres"), "none", nil, ""},
		{"explicit name beats the image", sts(nil, "postgres"), "redis", rd, ""},
		{"explicit alias, any case", sts(nil, "nginx"), " Redis-Alias ", rd, ""},
		{"explicit unknown", sts(nil, "postgres"), "oracle", nil, `unknown engine "oracle" in --engine: use one of auto, none, postgres, redis`},
		{"annotation beats the image", sts(map[string]string{plugins.AnnotationEngine: "redis"}, "postgres"), "", rd, ""},
		{"annotation none", sts(map[string]string{plugins.AnnotationEngine: "none"}, "postgres"), "", nil, ""},
		{"annotation auto falls through", sts(map[string]string{plugins.AnnotationEngine: "auto"}, "postgres"), "", pg, ""},
		{"explicit beats the annotation", sts(map[string]string{plugins.AnnotationEngine: "redis"}, "redis"), "postgres", pg, ""},
		{"unknown annotation", sts(map[string]string{plugins.AnnotationEngine: "db2"}, "postgres"), "", nil, "annotation kubectl-sts.io/engine of statefulset db"},
		{"nil statefulset", nil, "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reg.Detect(tc.sts, tc.explicit)
			if tc.errLike != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errLike)
				var unk *plugins.UnknownEngineError
				assert.True(t, errors.As(err, &unk))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func runningPod(name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar", Image: "busybox"}, {Name: "db", Image: "postgres:16"}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func TestQueryPodsBoundsParallelismAndIsolatesFailures(t *testing.T) {
	var running, peak atomic.Int32
	var pods []*corev1.Pod
	for i := 11; i >= 0; i-- { // out of order on purpose
		pods = append(pods, runningPod(fmt.Sprintf("db-%d", i), corev1.PodRunning))
	}
	pods = append(pods, runningPod("db-12", corev1.PodPending))
	target := plugins.Target{StatefulSet: sts(nil), Pods: pods, Parallel: 3, Timeout: 200 * time.Millisecond}
	members, err := plugins.QueryPods(context.Background(), target, func(ctx context.Context, pod *corev1.Pod) (plugins.Member, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		switch pod.Name {
		case "db-4":
			return plugins.Member{}, errors.New("connection refused")
		case "db-7":
			<-ctx.Done() // never answers
			return plugins.Member{}, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
		return plugins.Member{Role: plugins.RoleReplica, State: "streaming"}, nil
	})
	require.NoError(t, err)
	require.Len(t, members, 13)
	assert.LessOrEqual(t, peak.Load(), int32(3), "more queries at once than Parallel")
	assert.Equal(t, int32(3), peak.Load(), "queries did not run in parallel")
	for i, m := range members {
		assert.Equal(t, fmt.Sprintf("db-%d", i), m.Pod, "sorted by ordinal")
		assert.Equal(t, i, m.Ordinal)
		switch i {
		case 4:
			assert.Equal(t, plugins.RoleUnknown, m.Role)
			assert.Equal(t, "connection refused", m.Error)
		case 7:
			assert.Equal(t, plugins.RoleUnknown, m.Role)
			assert.Equal(t, "no answer within 200ms", m.Error)
		case 12:
			assert.Equal(t, plugins.RoleUnknown, m.Role)
			assert.Equal(t, "pod is Pending", m.Error)
		default:
			assert.Equal(t, plugins.RoleReplica, m.Role, m.Pod)
			assert.Empty(t, m.Error)
		}
	}
}

func TestQueryPodsReturnsCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	target := plugins.Target{StatefulSet: sts(nil), Pods: []*corev1.Pod{runningPod("db-0", corev1.PodRunning)}}
	members, err := plugins.QueryPods(ctx, target, func(ctx context.Context, _ *corev1.Pod) (plugins.Member, error) {
		return plugins.Member{}, ctx.Err()
	})
	assert.ErrorIs(t, err, context.Canceled)
	require.Len(t, members, 1)
	assert.Equal(t, plugins.RoleUnknown, members[0].Role)
}

func TestTargetRunAndContainer(t *testing.T) {
	_, ex := kubefake.NewClient()
	pod := runningPod("db-0", corev1.PodRunning)
	target := plugins.Target{StatefulSet: sts(nil), Pods: []*corev1.Pod{pod}, Exec: ex, Timeout: time.Second}
	isPG := func(img string) bool { return plugins.ImageName(img) == "postgres" }
	assert.Equal(t, "db", target.ContainerFor(pod, isPG), "the container whose image matched")
	assert.Equal(t, "sidecar", target.ContainerFor(pod, func(string) bool { return false }), "else the first")
	explicit := target
	explicit.Container = "other"
	assert.Equal(t, "other", explicit.ContainerFor(pod, isPG))

	ex.Handle("db-0", func(req kube.ExecRequest) (kube.ExecResult, error) {
		return kube.ExecResult{Stdout: []byte("partial"), Stderr: []byte("\n  FATAL: password authentication failed\nline2\nline3\nline4"), ExitCode: 2}, nil
	})
	out, err := target.Run(context.Background(), pod, "db", "psql", []string{"sh", "-c", "a very long script"})
	assert.Equal(t, "partial", string(out))
	var ce *plugins.CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "psql in pod db-0 exited with code 2: FATAL: password authentication failed; line2; line3", err.Error())
	assert.NotContains(t, err.Error(), "very long script", "the command line stays out of messages")
	calls := ex.Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, "ns", calls[0].Namespace)
	assert.Equal(t, "db", calls[0].Container)

	ex.Handle("db-0", func(kube.ExecRequest) (kube.ExecResult, error) {
		return kube.ExecResult{}, errors.New("upgrade failed")
	})
	_, err = target.Run(context.Background(), pod, "db", "psql", []string{"psql"})
	assert.EqualError(t, err, "psql in pod db-0: upgrade failed")
}

func TestRunParsedRunsInTheEngineContainerAndNamesThePodOfAParseError(t *testing.T) {
	_, ex := kubefake.NewClient()
	pod := runningPod("db-0", corev1.PodRunning)
	target := plugins.Target{StatefulSet: sts(nil), Pods: []*corev1.Pod{pod}, Exec: ex, Timeout: time.Second}
	isPG := func(img string) bool { return plugins.ImageName(img) == "postgres" }
	parse := func(out []byte) (int, error) {
		if string(out) != "42" {
			return 0, fmt.Errorf("cannot parse %q", out)
		}
		return 42, nil
	}
	query := plugins.RunParsed(target, isPG, "psql", []string{"psql", "-c", "select 42"}, parse)

	ex.Handle("db-0", func(kube.ExecRequest) (kube.ExecResult, error) { return kube.ExecResult{Stdout: []byte("42")}, nil })
	v, err := query(context.Background(), pod)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	calls := ex.Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, "db", calls[0].Container, "the container whose image the engine matches")
	assert.Equal(t, []string{"psql", "-c", "select 42"}, calls[0].Command)

	ex.Handle("db-0", func(kube.ExecRequest) (kube.ExecResult, error) { return kube.ExecResult{Stdout: []byte("?")}, nil })
	_, err = query(context.Background(), pod)
	assert.EqualError(t, err, `pod db-0: cannot parse "?"`)

	ex.Handle("db-0", func(kube.ExecRequest) (kube.ExecResult, error) { return kube.ExecResult{ExitCode: 2}, nil })
	_, err = query(context.Background(), pod)
	var ce *plugins.CommandError
	require.ErrorAs(t, err, &ce, "the command's own failure comes back as it is")
	assert.Equal(t, 2, ce.ExitCode)
}

func TestProblemsVerdict(t *testing.T) {
	var p plugins.Problems
	ok, why := p.Verdict()
	assert.True(t, ok)
	assert.Empty(t, why)

	p.Add("")
	ok, _ = p.Verdict()
	assert.True(t, ok, "a check that found nothing adds no problem")

	p.Addf("%s is %s", "db-1", "down")
	p.Add(plugins.LagReason(plugins.Member{Pod: "db-2"}, plugins.HealthOptions{MaxLagBytes: 10}))
	ok, why = p.Verdict()
	assert.False(t, ok)
	assert.Equal(t, "db-1 is down; db-2: lag in bytes unknown (bound 10)", why)
}

func TestProblemsAddReplicas(t *testing.T) {
	lag := int64(100)
	members := []plugins.Member{
		{Pod: "db-0", Role: plugins.RolePrimary, State: "broken too, but a primary"},
		{Pod: "db-1", Role: plugins.RoleReplica, State: "down"},
		{Pod: "db-2", Role: plugins.RoleReplica, State: "up", LagBytes: &lag},
		{Pod: "db-3", Role: plugins.RoleReplica, State: "up"},
		{Pod: "db-4", Role: plugins.RoleUnknown, State: "starting"},
	}
	role := func(m plugins.Member) string { return m.Pod + " is " + m.State }
	broken := func(m plugins.Member) string {
		if m.State == "up" {
			return ""
		}
		return m.Pod + " replication " + m.State
	}
	var p plugins.Problems
	p.AddReplicas(members, plugins.HealthOptions{MaxLagBytes: 10}, role, broken)
	assert.Equal(t, plugins.Problems{
		"db-1 replication down",
		"db-2: 100 bytes behind (bound 10)",
		"db-3: lag in bytes unknown (bound 10)",
		"db-4 is starting",
	}, p, "a broken replica is not also judged by its lag; the primary is not judged")
}

func TestRefusePrimary(t *testing.T) {
	ms := []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleReplica},
		{Pod: "db-2", Ordinal: 2, Role: plugins.RoleUnknown, Error: "timeout"},
	}
	assert.ErrorContains(t, plugins.RefusePrimary(ms, 0), "pod db-0 is the primary")
	assert.NoError(t, plugins.RefusePrimary(ms, 1))
	assert.NoError(t, plugins.RefusePrimary(ms, 2), "unknown, but another member is the primary")
	assert.NoError(t, plugins.RefusePrimary(ms, 9), "no such member")
	noPrimary := []plugins.Member{ms[1], ms[2]}
	err := plugins.RefusePrimary(noPrimary, 2)
	assert.ErrorContains(t, err, "cannot tell whether pod db-2 is the primary (timeout)")
}

func TestLagReason(t *testing.T) {
	m := plugins.Member{Pod: "db-1", LagBytes: plugins.Int64(2048), LagSeconds: plugins.Float64(1.5)}
	assert.Empty(t, plugins.LagReason(m, plugins.HealthOptions{}))
	assert.Empty(t, plugins.LagReason(m, plugins.HealthOptions{MaxLagBytes: 2048, MaxLagSeconds: 2}))
	assert.Equal(t, "db-1: 2048 bytes behind (bound 1024)", plugins.LagReason(m, plugins.HealthOptions{MaxLagBytes: 1024}))
	assert.Equal(t, "db-1: 1.5s behind (bound 1s)", plugins.LagReason(m, plugins.HealthOptions{MaxLagSeconds: 1}))
	assert.Contains(t, plugins.LagReason(plugins.Member{Pod: "db-1"}, plugins.HealthOptions{MaxLagSeconds: 1}), "unknown",
		"a bound on an unknown lag fails")
}

func TestPrimaryReason(t *testing.T) {
	assert.Equal(t, "no member is primary", plugins.PrimaryReason([]plugins.Member{{Pod: "a", Role: plugins.RoleReplica}}))
	assert.Equal(t, "more than one primary: a, b", plugins.PrimaryReason([]plugins.Member{{Pod: "a", Role: plugins.RolePrimary}, {Pod: "b", Role: plugins.RolePrimary}}))
	assert.Empty(t, plugins.PrimaryReason([]plugins.Member{{Pod: "a", Role: plugins.RolePrimary}}))
	assert.Equal(t, "no pods to ask", plugins.Unanswered(nil))
}

func TestReplicationReasonAsksForAnswersFirstThenOnePrimary(t *testing.T) {
	primary := plugins.Member{Pod: "db-0", Role: plugins.RolePrimary}
	replica := plugins.Member{Pod: "db-1", Role: plugins.RoleReplica}
	silent := plugins.Member{Pod: "db-2", Role: plugins.RoleUnknown, Error: "timeout"}
	assert.Empty(t, plugins.ReplicationReason([]plugins.Member{primary, replica}))
	assert.Equal(t, "no answer from db-2 (timeout)", plugins.ReplicationReason([]plugins.Member{replica, silent}), "an unanswered member before a missing primary")
	assert.Equal(t, "no member is primary", plugins.ReplicationReason([]plugins.Member{replica}))
	assert.Equal(t, "no pods to ask", plugins.ReplicationReason(nil))
}

func TestQuorumReasonAllowsALeaderOutsideTheMembers(t *testing.T) {
	leader := plugins.Member{Pod: "etcd-0", Role: plugins.RolePrimary}
	follower := plugins.Member{Pod: "etcd-1", Role: plugins.RoleReplica}
	silent := plugins.Member{Pod: "etcd-2", Role: plugins.RoleUnknown, Error: "timeout"}
	assert.Empty(t, plugins.QuorumReason([]plugins.Member{follower}), "the members that stay may follow a leader that goes")
	assert.Empty(t, plugins.QuorumReason([]plugins.Member{leader, follower}))
	assert.Equal(t, "no answer from etcd-2 (timeout)", plugins.QuorumReason([]plugins.Member{leader, silent}))
	other := leader
	other.Pod = "etcd-1"
	assert.Equal(t, "more than one leader: etcd-0, etcd-1", plugins.QuorumReason([]plugins.Member{leader, other}))
}

func TestRemoveOptionsEmit(t *testing.T) {
	var mu sync.Mutex
	var got []plugins.RemoveEvent
	opts := plugins.RemoveOptions{DryRun: true, Events: func(ev plugins.RemoveEvent) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
	}}
	opts.Emit(plugins.RemoveEvent{Ordinal: 2, Action: plugins.ActionChanged, Message: "would drop"})
	plugins.RemoveOptions{}.Emit(plugins.RemoveEvent{Message: "nobody listens"}) // must not panic
	require.Len(t, got, 1)
	assert.True(t, got[0].DryRun, "events of a dry run say so")
	assert.True(t, strings.HasPrefix(got[0].Message, "would"))
}

func TestNotPrimaryMessage(t *testing.T) {
	ms := []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleReplica},
		{Pod: "db-2", Ordinal: 2, Role: plugins.RoleUnknown, Error: "pod is Pending"},
	}
	assert.Equal(t, "pod db-1 is not the primary (role replica)", plugins.NotPrimaryMessage(ms, 1))
	assert.Equal(t, "pod db-2 did not answer (pod is Pending); the primary is db-0", plugins.NotPrimaryMessage(ms, 2))
	assert.Equal(t, "ordinal 7 has no pod", plugins.NotPrimaryMessage(ms, 7))
}
