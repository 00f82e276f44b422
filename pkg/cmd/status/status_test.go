package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	statuscmd "github.com/kubectl-sts/kubectl-sts/pkg/cmd/status"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const ns = "default"

func newFixture(name string, replicas int) *statustest.Fixture {
	return statustest.New(ns, name, replicas, cmdtesting.FakeNow)
}

// run runs status without an engine unless the test names one: the
// fixtures' postgres images would otherwise make auto-detection query pods
// that the fake executor does not answer.
func run(t *testing.T, f *cmdtesting.Fake, args ...string) int {
	t.Helper()
	if !slices.Contains(args, "--engine") {
		args = append(args, "--engine", "none")
	}
	return f.Run(context.Background(), cmd.Run, append([]string{"status"}, args...)...)
}

func objects(fs ...*statustest.Fixture) []runtime.Object {
	var out []runtime.Object
	for _, f := range fs {
		out = append(out, f.Objects()...)
	}
	return out
}

func TestStatusGolden(t *testing.T) {
	cases := []struct {
		name    string
		fixture *statustest.Fixture
		args    []string
		code    int
	}{
		{"healthy", newFixture("db", 3), nil, cmdutil.ExitOK},
		{"healthy-wide", newFixture("db", 3), []string{"-o", "wide"}, cmdutil.ExitOK},
		{"rollout-paused", newFixture("db", 3).StartRollout(2, 2), nil, cmdutil.ExitDegraded},
		{"rollout-stuck", newFixture("db", 3).StartRollout(0).Recreate(2, statustest.UpdateHash, 6*time.Minute, false), nil, cmdutil.ExitDegraded},
		{"leftover-pvcs", newFixture("db", 4).ScaleTo(2).DeletePod(2).DeletePod(3), nil, cmdutil.ExitDegraded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(tc.fixture.Objects()...)
			code := run(t, f, append([]string{"db"}, tc.args...)...)
			assert.Equal(t, tc.code, code, f.ErrOut.String())
			assert.Empty(t, f.ErrOut.String(), "a verdict is output, not an error")
			statustest.Golden(t, tc.name, f.Out.String(), *update)
		})
	}
}

func TestStuckAfterFlag(t *testing.T) {
	fx := func() *statustest.Fixture {
		return newFixture("db", 3).StartRollout(0).Recreate(2, statustest.UpdateHash, 2*time.Minute, false)
	}
	f := cmdtesting.NewFakeOptions(fx().Objects()...)
	require.Equal(t, cmdutil.ExitDegraded, run(t, f, "db"))
	assert.NotContains(t, f.Out.String(), "RolloutStuck", "2m is below the default 5m")
	assert.Contains(t, f.Out.String(), "Verdict: Progressing")

	f = cmdtesting.NewFakeOptions(fx().Objects()...)
	require.Equal(t, cmdutil.ExitDegraded, run(t, f, "db", "--stuck-after", "90s"))
	assert.Contains(t, f.Out.String(), "Verdict: Degraded")
	assert.Contains(t, f.Out.String(), "RolloutStuck")
}

func TestStatusJSON(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 3).StartRollout(0).Recreate(2, statustest.UpdateHash, 6*time.Minute, false).Objects()...)
	code := run(t, f, "db", "-o", "json")
	require.Equal(t, cmdutil.ExitDegraded, code, f.ErrOut.String())
	var r status.Report
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &r), f.Out.String())
	assert.Equal(t, status.KindReport, r.Kind)
	assert.Equal(t, "db-"+statustest.UpdateHash, r.StatefulSet.UpdateRevision)
	require.Len(t, r.Ordinals, 3)
	assert.Equal(t, status.RevisionUpdate, r.Ordinals[2].Pod.RevisionRole)
	assert.False(t, r.Verdict.Healthy)
	assert.Equal(t, status.StateDegraded, r.Verdict.State)
	assert.True(t, r.Verdict.Has(status.CodeRolloutStuck))
	statustest.Golden(t, "rollout-stuck-json", f.Out.String(), *update)
}

func TestStatusYAML(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 2).Objects()...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "db", "-o", "yaml"), f.ErrOut.String())
	var r status.Report
	require.NoError(t, yaml.Unmarshal(f.Out.Bytes(), &r))
	assert.Equal(t, "db", r.StatefulSet.Name)
	assert.True(t, r.Verdict.Healthy)
	assert.Contains(t, f.Out.String(), "apiVersion: kubectl-sts.io/v1alpha1\n")
}

// TestKubectlPrinters runs every printer of kubectl's -o on one status:
// each prints the JSON document, as kubectl prints an object.
func TestKubectlPrinters(t *testing.T) {
	dir := t.TempDir()
	pathFile := filepath.Join(dir, "state.jsonpath")
	require.NoError(t, os.WriteFile(pathFile, []byte(`{.verdict.state} {.statefulSet.replicas.ready}`), 0o600))
	tmplFile := filepath.Join(dir, "state.tmpl")
	require.NoError(t, os.WriteFile(tmplFile, []byte(`{{.statefulSet.name}}={{.verdict.state}}`), 0o600))
	for name, tc := range map[string]struct {
		args []string
		want string
		code int
	}{
		"jsonpath":             {[]string{"-o", "jsonpath={.verdict.state}"}, "Degraded", cmdutil.ExitDegraded},
		"jsonpath of a list":   {[]string{"-o", "jsonpath={.ordinals[*].pod.name}"}, "db-0 db-1 db-2", cmdutil.ExitDegraded},
		"jsonpath-file":        {[]string{"-o", "jsonpath-file=" + pathFile}, "Degraded 2", cmdutil.ExitDegraded},
		"go-template":          {[]string{"-o", "go-template={{.verdict.state}}/{{len .ordinals}}"}, "Degraded/3", cmdutil.ExitDegraded},
		"go-template-file":     {[]string{"-o", "go-template-file=" + tmplFile}, "db=Degraded", cmdutil.ExitDegraded},
		"template flag":        {[]string{"-o", "go-template", "--template", "{{.kind}}"}, "StatefulSetStatus", cmdutil.ExitDegraded},
		"name":                 {[]string{"-o", "name"}, "statefulset.apps/db\n", cmdutil.ExitDegraded},
		"jsonpath missing key": {[]string{"-o", "jsonpath={.nothing}", "--allow-missing-template-keys=false"}, "", cmdutil.ExitFailed},
	} {
		t.Run(name, func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(newFixture("db", 3).StartRollout(0).Recreate(2, statustest.UpdateHash, 6*time.Minute, false).Objects()...)
			code := run(t, f, append([]string{"db"}, tc.args...)...)
			assert.Equal(t, tc.code, code, f.ErrOut.String())
			assert.Equal(t, tc.want, f.Out.String())
			if tc.code == cmdutil.ExitFailed {
				assert.Contains(t, f.ErrOut.String(), "nothing is not found")
			}
		})
	}
}

func TestKubectlPrintersOfAList(t *testing.T) {
	f := cmdtesting.NewFakeOptions(objects(newFixture("db", 2), newFixture("kv", 1))...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-o", "name"), f.ErrOut.String())
	assert.Equal(t, "statefulset.apps/db\nstatefulset.apps/kv\n", f.Out.String())

	f = cmdtesting.NewFakeOptions(objects(newFixture("db", 2), newFixture("kv", 1))...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-o", `jsonpath={range .items[*]}{.statefulSet.name} {.verdict.state}{"\n"}{end}`), f.ErrOut.String())
	assert.Equal(t, "db Healthy\nkv Healthy\n", f.Out.String())

	f = cmdtesting.NewFakeOptions(objects(newFixture("db", 2))...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-o", "json"), f.ErrOut.String())
	var l status.List
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &l))
	assert.Equal(t, status.KindList, l.Kind)
	require.Len(t, l.Items, 1)
	assert.Equal(t, "db", l.Items[0].StatefulSet.Name)
}

func TestListInNamespace(t *testing.T) {
	other := statustest.New("prod", "elsewhere", 1, cmdtesting.FakeNow)
	f := cmdtesting.NewFakeOptions(objects(newFixture("db", 3), newFixture("cache", 1), newFixture("pg", 2).StartRollout(1, 1), other)...)
	code := run(t, f)
	assert.Equal(t, cmdutil.ExitDegraded, code, "pg is mid-rollout")
	assert.NotContains(t, f.Out.String(), "elsewhere")
	assert.NotContains(t, f.Out.String(), "NAMESPACE")
	statustest.Golden(t, "list", f.Out.String(), *update)
}

func TestListAllNamespaces(t *testing.T) {
	other := statustest.New("prod", "elsewhere", 1, cmdtesting.FakeNow)
	f := cmdtesting.NewFakeOptions(objects(newFixture("db", 3), other)...)
	code := run(t, f, "-A")
	assert.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	statustest.Golden(t, "list-all", f.Out.String(), *update)

	f = cmdtesting.NewFakeOptions(objects(newFixture("db", 3), other)...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-A", "-o", "json"))
	var l status.List
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &l))
	assert.Equal(t, status.KindList, l.Kind)
	require.Len(t, l.Items, 2)
	assert.Equal(t, "default", l.Items[0].StatefulSet.Namespace)
	assert.Equal(t, "prod", l.Items[1].StatefulSet.Namespace)
}

func TestListSelector(t *testing.T) {
	labelled := func(fx *statustest.Fixture, tier string) *statustest.Fixture {
		fx.StatefulSet.Labels = map[string]string{"tier": tier}
		return fx
	}
	fixtures := func() []runtime.Object {
		return objects(labelled(newFixture("db", 1), "data"), labelled(newFixture("cache", 1), "cache"),
			labelled(statustest.New("prod", "pg", 1, cmdtesting.FakeNow), "data"))
	}
	for _, args := range [][]string{{"-l", "tier=data"}, {"--selector", "tier in (data)"}} {
		f := cmdtesting.NewFakeOptions(fixtures()...)
		require.Equal(t, cmdutil.ExitOK, run(t, f, args...), f.ErrOut.String())
		assert.Contains(t, f.Out.String(), "db")
		assert.NotContains(t, f.Out.String(), "cache", "%v", args)
		assert.NotContains(t, f.Out.String(), "pg", "%v: another namespace", args)
	}

	f := cmdtesting.NewFakeOptions(fixtures()...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-A", "-l", "tier=data", "-o", "json"), f.ErrOut.String())
	var l status.List
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &l))
	var names []string
	for _, r := range l.Items {
		names = append(names, r.StatefulSet.Namespace+"/"+r.StatefulSet.Name)
	}
	assert.Equal(t, []string{"default/db", "prod/pg"}, names)

	f = cmdtesting.NewFakeOptions(fixtures()...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "-l", "tier=none"))
	assert.Empty(t, f.Out.String())
	assert.Equal(t, "No StatefulSets matching tier=none found in namespace default.\n", f.ErrOut.String())
}

func TestListEmpty(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	assert.Equal(t, cmdutil.ExitOK, run(t, f))
	assert.Empty(t, f.Out.String())
	assert.Equal(t, "No StatefulSets found in namespace default.\n", f.ErrOut.String())

	f = cmdtesting.NewFakeOptions()
	assert.Equal(t, cmdutil.ExitOK, run(t, f, "-o", "json"))
	assert.JSONEq(t, `{"apiVersion":"kubectl-sts.io/v1alpha1","kind":"StatefulSetStatusList","items":[]}`, f.Out.String())
}

func TestRequestsDoNotGrowWithReplicas(t *testing.T) {
	for _, n := range []int{2, 200} {
		f := cmdtesting.NewFakeOptions(newFixture("db", n).Objects()...)
		cs := f.Client.Kube.(*fake.Clientset)
		cs.ClearActions()
		require.Equal(t, cmdutil.ExitOK, run(t, f, "db", "-o", "json"))
		var verbs []string
		for _, a := range cs.Actions() {
			verbs = append(verbs, a.GetVerb()+" "+a.GetResource().Resource)
		}
		// The server version once (the tested range), then one request per
		// kind, then the operation record.
		assert.Equal(t, []string{"get version", "get statefulsets", "list pods", "list persistentvolumeclaims", "get configmaps"}, verbs, "%d replicas", n)
	}
}

func TestColourAlways(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 1).Objects()...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "db", "--color", "always"))
	assert.Contains(t, f.Out.String(), "\x1b[")
	f = cmdtesting.NewFakeOptions(newFixture("db", 1).Objects()...)
	require.Equal(t, cmdutil.ExitOK, run(t, f, "db"))
	assert.NotContains(t, f.Out.String(), "\x1b[", "no colour off a terminal")
}

func TestBadInputIsRefusedBeforeAnyRequest(t *testing.T) {
	cases := map[string]struct {
		args []string
		msg  string
	}{
		"invalid output":         {[]string{"db", "-o", "xml"}, `error: unable to match a printer suitable for the output format "xml", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,kyaml,name,table,template,templatefile,wide,yaml` + "\n"},
		"jsonpath without path":  {[]string{"db", "-o", "jsonpath"}, "-o jsonpath: template format specified but no template given"},
		"bad jsonpath":           {[]string{"db", "-o", "jsonpath={.verdict"}, "-o jsonpath={.verdict: error parsing jsonpath {.verdict"},
		"invalid name":           {[]string{"DB_1"}, `"DB_1" is not a valid StatefulSet name`},
		"empty name":             {[]string{""}, "the StatefulSet name is empty"},
		"two names":              {[]string{"a", "b"}, "takes at most one StatefulSet name, got 2"},
		"name with -A":           {[]string{"db", "-A"}, "cannot be combined with --all-namespaces"},
		"name with -l":           {[]string{"db", "-l", "app=db"}, "a StatefulSet name cannot be combined with --selector"},
		"bad selector":           {[]string{"-l", "a b"}, `invalid --selector "a b"`},
		"watch without a name":   {[]string{"--watch"}, "--watch needs the name of a StatefulSet"},
		"non-positive threshold": {[]string{"db", "--stuck-after", "0s"}, "--stuck-after must be positive"},
		"bad duration":           {[]string{"db", "--stuck-after", "soon"}, "invalid argument"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(newFixture("db", 1).Objects()...)
			cs := f.Client.Kube.(*fake.Clientset)
			cs.ClearActions()
			code := run(t, f, tc.args...)
			assert.Equal(t, cmdutil.ExitUsage, code)
			assert.Contains(t, f.ErrOut.String(), tc.msg)
			assert.Contains(t, f.ErrOut.String(), "kubectl sts status --help")
			assert.Empty(t, f.Out.String())
			assert.Empty(t, cs.Actions(), "nothing was read")
		})
	}
}

func defaultNamespace() runtime.Object {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
}

func TestUnknownStatefulSet(t *testing.T) {
	f := cmdtesting.NewFakeOptions(append(newFixture("db", 1).Objects(), defaultNamespace())...)
	code := run(t, f, "nope")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), `statefulsets.apps "nope" not found`)
	assert.Contains(t, f.ErrOut.String(), "kubectl get sts -n default")
	assert.Empty(t, f.Out.String())
}

func TestStatefulSetInAnotherNamespace(t *testing.T) {
	elsewhere := statustest.New("prod", "orders", 1, cmdtesting.FakeNow)
	f := cmdtesting.NewFakeOptions(append(elsewhere.Objects(), defaultNamespace())...)
	code := run(t, f, "orders")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), `StatefulSet "orders" not found in namespace "default", but it exists in namespace "prod": add -n prod`)
}

func TestNamespaceDoesNotExist(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 1).Objects()...)
	f.Client.Namespace = "nowhere"
	code := run(t, f, "db")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), `namespace "nowhere" does not exist`)
	assert.Contains(t, f.ErrOut.String(), "kubectl get namespaces")
}

func TestForbiddenNamesTheMissingPermission(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 1).Objects()...)
	cs := f.Client.Kube.(*fake.Clientset)
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		// The API server's RBAC denial, word for word.
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "",
			errors.New(`User "alice" cannot list resource "pods" in API group "" in the namespace "default"`))
	})
	code := run(t, f, "db")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), `missing permission: verb "list" on resource "pods" in namespace "default"`)
	assert.Contains(t, f.ErrOut.String(), "docs/rbac.md")
	assert.Empty(t, f.Out.String())
}

func TestForbiddenAtClusterScope(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	cs := f.Client.Kube.(*fake.Clientset)
	cs.PrependReactor("list", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "",
			errors.New(`User "alice" cannot list resource "statefulsets" in API group "apps" at the cluster scope`))
	})
	assert.Equal(t, cmdutil.ExitFailed, run(t, f, "-A"))
	assert.Contains(t, f.ErrOut.String(), `missing permission: verb "list" on resource "statefulsets.apps" at the cluster scope`)
}

func TestUnreachableCluster(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: 5 * time.Second}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	f := cmdtesting.NewFakeOptionsWithClient(&kube.Client{Kube: cs, Config: cfg, Namespace: ns}, nil)
	code := run(t, f, "db")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), "cannot reach the Kubernetes API server at https://127.0.0.1:1")
	assert.Empty(t, f.Out.String())
}

// fakeEngine reports fixed members.
type fakeEngine struct {
	mu      sync.Mutex
	calls   int
	members []plugins.Member
}

func (e *fakeEngine) Name() string        { return "fakedb" }
func (e *fakeEngine) Matches(string) bool { return true }
func (e *fakeEngine) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if t.Exec == nil {
		return nil, errors.New("no executor")
	}
	return e.members, nil
}
func (e *fakeEngine) Healthy([]plugins.Member, plugins.HealthOptions) (bool, string) { return true, "" }
func (e *fakeEngine) BeforeRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
func (e *fakeEngine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}

func (e *fakeEngine) Calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

func execute(ctx context.Context, o *statuscmd.Options, args ...string) int {
	if o.EngineFor == nil && !slices.Contains(args, "--engine") {
		args = append(args, "--engine", "none")
	}
	c := statuscmd.NewCmd(o)
	c.SetArgs(args)
	c.SetOut(o.Out)
	c.SetErr(o.ErrOut)
	c.SilenceUsage, c.SilenceErrors = true, true
	ran, err := c.ExecuteContextC(ctx)
	return cmd.HandleError(o.Options, ran, err)
}

func TestEngineColumns(t *testing.T) {
	e := &fakeEngine{members: []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary, Slots: []plugins.Slot{{Name: "db_1", Active: true}}},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleReplica, LagBytes: ptr.To(int64(1536)), LagSeconds: ptr.To(1.5)},
	}}
	f := cmdtesting.NewFakeOptions(newFixture("db", 2).Objects()...)
	o := statuscmd.NewOptions(f.Options)
	var asked string
	o.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) { asked = sts.Name; return e, nil }
	code := execute(context.Background(), o, "db")
	require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	assert.Equal(t, "db", asked)
	assert.Equal(t, 1, e.Calls())
	statustest.Golden(t, "engine", f.Out.String(), *update)

	f = cmdtesting.NewFakeOptions(newFixture("db", 2).Objects()...)
	o = statuscmd.NewOptions(f.Options)
	o.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return e, nil }
	require.Equal(t, cmdutil.ExitOK, execute(context.Background(), o, "db", "-o", "json"))
	var r status.Report
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &r))
	require.Len(t, r.Members, 2)
	require.NotNil(t, r.Ordinals[1].Member)
	assert.Equal(t, plugins.RoleReplica, r.Ordinals[1].Member.Role)
	assert.Equal(t, "fakedb", r.Engine.Name)
}

func TestNoEngineNoEngineColumns(t *testing.T) {
	f := cmdtesting.NewFakeOptions(newFixture("db", 2).Objects()...)
	o := statuscmd.NewOptions(f.Options)
	o.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return nil, nil }
	require.Equal(t, cmdutil.ExitOK, execute(context.Background(), o, "db"))
	assert.NotContains(t, f.Out.String(), "ROLE")
	assert.NotContains(t, f.Out.String(), "Engine:")
}

// syncBuffer is a bytes.Buffer safe for the watch goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func watchOptions(f *cmdtesting.Fake) (*statuscmd.Options, *syncBuffer) {
	out := &syncBuffer{}
	f.Options.IOStreams = genericiooptions.IOStreams{In: f.In, Out: out, ErrOut: f.ErrOut}
	o := statuscmd.NewOptions(f.Options)
	o.WatchMinInterval = 10 * time.Millisecond
	o.WatchRefresh = time.Hour
	return o, out
}

func TestWatchRedrawsOnChangeAndExitsZeroOnInterrupt(t *testing.T) {
	fx := newFixture("db", 2)
	f := cmdtesting.NewFakeOptions(fx.Objects()...)
	o, out := watchOptions(f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- execute(ctx, o, "db", "--watch") }()

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Verdict: Healthy") }, 10*time.Second, 10*time.Millisecond, out.String())
	assert.Equal(t, 1, strings.Count(out.String(), "--- "), "one frame so far:\n%s", out.String())

	// db-1 stops being Ready: the watch redraws with the new verdict.
	pod := fx.Pod(1).DeepCopy()
	for i := range pod.Status.Conditions {
		pod.Status.Conditions[i].Status = corev1.ConditionFalse
		pod.Status.Conditions[i].LastTransitionTime = metav1.NewTime(cmdtesting.FakeNow.Add(-time.Minute))
	}
	pod.Status.ContainerStatuses[0].Ready = false
	_, err := f.Client.Kube.CoreV1().Pods(ns).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "PodNotReady") }, 10*time.Second, 10*time.Millisecond, out.String())
	frames := strings.Split(out.String(), "--- ")
	assert.Contains(t, frames[len(frames)-1], "db-1   Running   0/1")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, cmdutil.ExitOK, code, "Ctrl-C ends a watch cleanly")
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop after the context was cancelled")
	}
	assert.Empty(t, f.ErrOut.String())
}

func TestWatchJSONPrintsOneDocumentPerChange(t *testing.T) {
	fx := newFixture("db", 1)
	f := cmdtesting.NewFakeOptions(fx.Objects()...)
	o, out := watchOptions(f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- execute(ctx, o, "db", "--watch", "-o", "json") }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"kind": "StatefulSetStatus"`) }, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, f.Client.Kube.CoreV1().Pods(ns).Delete(context.Background(), "db-0", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return strings.Count(out.String(), `"kind": "StatefulSetStatus"`) == 2 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.Equal(t, cmdutil.ExitOK, <-done)

	dec := json.NewDecoder(strings.NewReader(out.String()))
	var states []status.State
	for dec.More() {
		var r status.Report
		require.NoError(t, dec.Decode(&r))
		states = append(states, r.Verdict.State)
	}
	assert.Equal(t, []status.State{status.StateHealthy, status.StateProgressing}, states)
}

func TestWatchUnknownStatefulSet(t *testing.T) {
	f := cmdtesting.NewFakeOptions(defaultNamespace())
	o, out := watchOptions(f)
	code := execute(context.Background(), o, "nope", "--watch")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), `"nope" not found`)
	assert.Empty(t, out.String())
}

func TestWatchEndsWhenTheStatefulSetIsDeleted(t *testing.T) {
	fx := newFixture("db", 1)
	f := cmdtesting.NewFakeOptions(fx.Objects()...)
	o, out := watchOptions(f)
	done := make(chan int, 1)
	go func() { done <- execute(context.Background(), o, "db", "--watch") }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Verdict:") }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, f.Client.Kube.AppsV1().StatefulSets(ns).Delete(context.Background(), "db", metav1.DeleteOptions{}))
	select {
	case code := <-done:
		assert.Equal(t, cmdutil.ExitFailed, code)
		assert.Contains(t, f.ErrOut.String(), "statefulset default/db was deleted")
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not end:\n%s", out.String())
	}
}

// unreadEngine has a member that does not answer, with a long error.
type unreadEngine struct{ fakeEngine }

func (e *unreadEngine) Healthy(ms []plugins.Member, _ plugins.HealthOptions) (bool, string) {
	if r := plugins.Unanswered(ms); r != "" {
		return false, r
	}
	return true, ""
}

// Under --watch the engine is asked at most every WatchEngineInterval; a
// frame drawn from an older answer says how old it is, and a long error
// shows once per frame, not in the engine line, the table and the verdict.
func TestWatchMarksStaleEngineDataAndSaysAnErrorOnce(t *testing.T) {
	long := `psql: error: connection to server at "10.0.0.11", port 5432 failed: Connection refused; is the server running on that host and accepting TCP/IP connections?`
	e := &unreadEngine{fakeEngine{members: []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleUnknown, Error: long},
	}}}
	fx := newFixture("db", 2)
	f := cmdtesting.NewFakeOptions(fx.Objects()...)
	o, out := watchOptions(f)
	var mu sync.Mutex
	clock := cmdtesting.FakeNow
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	o.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return e, nil }
	o.WatchRefresh = 5 * time.Second
	o.WatchEngineInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- execute(ctx, o, "db", "--watch") }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Verdict:") }, 10*time.Second, 10*time.Millisecond, out.String())
	assert.NotContains(t, out.String(), "engine data from")

	// 20s later a pod changes: the frame reuses the engine's answer.
	mu.Lock()
	clock = clock.Add(20 * time.Second)
	mu.Unlock()
	pod := fx.Pod(1).DeepCopy()
	pod.Status.ContainerStatuses[0].RestartCount = 1
	_, err := f.Client.Kube.CoreV1().Pods(ns).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Count(out.String(), "Verdict:") >= 2 }, 10*time.Second, 10*time.Millisecond, out.String())
	cancel()
	<-done
	assert.Equal(t, 1, e.Calls(), "asked once within the interval")
	frames := strings.Split(out.String(), "--- ")[1:]
	require.Len(t, frames, 2, out.String())
	assert.Contains(t, frames[1], "(engine data from 20s ago, at 15:04:05)")
	for _, fr := range frames {
		assert.Equal(t, 1, strings.Count(fr, long), "the error once per frame:\n%s", fr)
	}
}

// slowEngine answers only when its context ends.
type slowEngine struct{ fakeEngine }

func (e *slowEngine) Members(ctx context.Context, _ plugins.Target) ([]plugins.Member, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A list asks every StatefulSet's engine, each bounded by its own timeout:
// a broken replica set no longer lists green, a database that does not
// answer is named, and --engine none says plainly nothing was asked.
func TestListAsksEnginesWithATimeoutEach(t *testing.T) {
	other := statustest.New("prod", "elsewhere", 1, cmdtesting.FakeNow)
	broken := &unreadEngine{fakeEngine{members: []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleUnknown, Error: "connection refused"},
	}}}
	f := cmdtesting.NewFakeOptions(objects(newFixture("db", 3), other)...)
	o := statuscmd.NewOptions(f.Options)
	o.ListEngineTimeout = 200 * time.Millisecond
	o.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) {
		if sts.Name == "db" {
			return broken, nil
		}
		return &slowEngine{}, nil
	}
	start := time.Now()
	code := execute(context.Background(), o, "-A", "-o", "json")
	assert.Less(t, time.Since(start), 5*time.Second, "bounded by the per-StatefulSet timeout")
	assert.Equal(t, cmdutil.ExitDegraded, code, f.ErrOut.String())
	var l status.List
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &l), f.Out.String())
	require.Len(t, l.Items, 2)
	assert.Equal(t, 1, broken.Calls())
	assert.Equal(t, []status.Code{status.CodeEngineUnhealthy}, l.Items[0].Verdict.Codes())
	require.NotNil(t, l.Items[1].Engine)
	assert.Contains(t, l.Items[1].Engine.Error, "no answer within 200ms")
	assert.Equal(t, []status.Code{status.CodeEngineUnavailable}, l.Items[1].Verdict.Codes())

	f = cmdtesting.NewFakeOptions(objects(newFixture("db", 3), other)...)
	assert.Equal(t, cmdutil.ExitOK, run(t, f, "-A"))
	assert.Contains(t, f.Out.String(), "Database engines were not asked (--engine none)")
}

// A StatefulSet deleted by expand-pvc's template step, whose run stopped
// before recreating it, is not simply "not found": status says what
// happened and the command that recreates it from the saved copy.
func TestStatefulSetDeletedByAnInterruptedExpansion(t *testing.T) {
	for _, held := range []bool{false, true} {
		f := cmdtesting.NewFakeOptions(defaultNamespace())
		ctx := context.Background()
		j := journal.New(f.Client.Kube, "default", "db", "elsewhere/7/abc").WithClock(func() time.Time { return cmdtesting.FakeNow.Add(-5 * time.Second) }, journal.DefaultLeaseDuration)
		saved := newFixture("db", 1).StatefulSet
		rec, _, err := j.Begin(ctx, expand.Operation, expand.State{Claim: "data", Size: "2Gi",
			Template: &expand.TemplateState{Step: expand.TemplateDeleted, Desired: saved, OldUID: "old"}})
		require.NoError(t, err)
		if !held {
			require.NoError(t, j.Release(ctx, rec, "killed"))
		}

		code := run(t, f, "db")
		assert.Equal(t, cmdutil.ExitFailed, code)
		errOut := f.ErrOut.String()
		assert.Contains(t, errOut, `StatefulSet "db" not found in namespace "default": an interrupted expand-pvc of claim data to 2Gi deleted it to update its volumeClaimTemplate (its pods and claims were kept) and saved a copy in configmap kubectl-sts.db`)
		if held {
			assert.Contains(t, errOut, "elsewhere/7/abc is recreating it now (last heartbeat 5s ago; its lease expires at 2026-01-02T15:04:30Z)")
		} else {
			assert.Contains(t, errOut, "recreate it by finishing that run: kubectl sts expand-pvc db --claim data --size 2Gi -n default")
		}
		assert.NotContains(t, errOut, "kubectl get sts")
	}
}
