package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const ns = "default"

// pending is a StatefulSet whose new template is applied with the
// partition holding every pod (status as the controller reports it).
func pending(replicas int32, mutate ...func(*appsv1.StatefulSet)) []runtime.Object {
	labels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns, UID: "uid-db", Generation: 2, ResourceVersion: "7"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres:16.4"}}}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &replicas}},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: replicas, ReadyReplicas: replicas,
			CurrentRevision: "db-6c9f8d7b5", UpdateRevision: "db-7d4b9c6f8", CurrentReplicas: replicas},
	}
	for _, m := range mutate {
		m(sts)
	}
	objs := []runtime.Object{sts}
	for i := int32(0); i < replicas; i++ {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d", i), Namespace: ns, UID: "p",
				Labels: map[string]string{"app": "db", appsv1.StatefulSetRevisionLabel: "db-6c9f8d7b5"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	return objs
}

// run runs rollout without an engine unless the test names one: the
// fixtures' postgres images would otherwise add an engine gate that queries
// pods the fake executor does not answer.
func run(f *cmdtesting.Fake, args ...string) int {
	sub := len(args) > 0 && slices.Contains([]string{"resume", "undo", "abort", "status", "history"}, args[0])
	if !sub && !slices.Contains(args, "--engine") {
		args = append(args, "--engine", "none")
	}
	return f.Run(context.Background(), cmd.Run, append([]string{"rollout"}, args...)...)
}

func resourceVersion(t *testing.T, f *cmdtesting.Fake) string {
	t.Helper()
	sts, err := f.Client.Kube.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	return sts.ResourceVersion
}

func noRecord(t *testing.T, f *cmdtesting.Fake) {
	t.Helper()
	rec, err := journal.New(f.Client.Kube, ns, "db", "t").Load(context.Background())
	require.NoError(t, err)
	assert.Nil(t, rec, "no record was written")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	assert.Equal(t, string(want), got)
}

func TestBadInputIsUsageErrorAndChangesNothing(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"db"}, "add --staged"},
		{[]string{"--staged"}, "needs the name of a StatefulSet"},
		{[]string{"db", "--staged", "--steps", "50%,25%,100%"}, "not increasing"},
		{[]string{"db", "--staged", "--steps", "1,50%"}, "does not end at 100%"},
		{[]string{"db", "--staged", "--steps", "x"}, "neither a count"},
		{[]string{"db", "--staged", "--step-timeout", "ten"}, "invalid argument"},
		{[]string{"db", "--staged", "--step-timeout", "0s"}, "--step-timeout must be positive"},
		{[]string{"db", "--staged", "--soak", "-1s"}, "--soak cannot be negative"},
		{[]string{"db", "--staged", "--image", "postgres"}, "use CONTAINER=IMAGE"},
		{[]string{"db", "--staged", "--image", "db=Postgres 17"}, "not a valid image reference"},
		{[]string{"db", "--staged", "--env", "1BAD"}, "NAME=VALUE"},
		{[]string{"db", "--staged", "--max-lag", "lots"}, "neither a duration"},
		{[]string{"db", "--staged", "-o", "xml"}, `unable to match a printer suitable for the output format "xml", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,kyaml,name,template,templatefile,text,yaml`},
		{[]string{"db", "--staged", "-o", "go-template"}, "-o go-template: template format specified but no template given"},
		{[]string{"db", "--staged", "--timeout", "-1s"}, "--timeout cannot be negative"},
		{[]string{"db", "--staged", "--interactive", "--pause-after", "1"}, "cannot be combined"},
		{[]string{"db", "--staged", "--interactive"}, "needs a terminal"},
		{[]string{"db", "--staged", "--pause-after", "3"}, "--pause-after 3"},
		{[]string{"db", "--staged", "--max-lag", "10s"}, "--max-lag needs a database engine"},
		{[]string{"db", "--staged", "--engine", "oracle"}, "unknown engine"},
		{[]string{"db", "--staged", "--engine", "redis", "--max-lag", "10s"}, "redis measures replication lag in bytes only"},
		{[]string{"db", "--staged", "--engine", "mysql", "--max-lag", "64Mi"}, "mysql measures replication lag in seconds only"},
		{[]string{"db", "--staged", "--engine", "mongodb", "--max-lag", "10s,64Mi"}, "mongodb measures replication lag in seconds only"},
		{[]string{"db", "--staged", "--image", "db=postgres:17"}, "already has a pending revision"},
		{[]string{"db", "--staged", "-f", "missing.yaml"}, "cannot read missing.yaml"},
		{[]string{"Bad_Name", "--staged"}, "not a valid StatefulSet name"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(pending(3)...)
			code := run(f, tc.args...)
			assert.Equal(t, cmdutil.ExitUsage, code, f.ErrOut.String())
			assert.Contains(t, f.ErrOut.String(), tc.want)
			assert.Equal(t, "7", resourceVersion(t, f))
			noRecord(t, f)
		})
	}
}

func TestRefusalsAboutTheStatefulSet(t *testing.T) {
	onDelete := func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	}
	f := cmdtesting.NewFakeOptions(pending(3, onDelete)...)
	assert.Equal(t, cmdutil.ExitFailed, run(f, "db", "--staged", "--dry-run"))
	assert.Contains(t, f.ErrOut.String(), "updateStrategy OnDelete")

	f = cmdtesting.NewFakeOptions(pending(0)...)
	assert.Equal(t, cmdutil.ExitFailed, run(f, "db", "--staged", "--image", "db=postgres:17", "--dry-run"))
	assert.Contains(t, f.ErrOut.String(), "0 replicas")

	current := func(s *appsv1.StatefulSet) { s.Status.UpdateRevision = s.Status.CurrentRevision }
	f = cmdtesting.NewFakeOptions(pending(3, current)...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "db", "--staged"))
	assert.Contains(t, f.ErrOut.String(), "nothing to roll out")

	f = cmdtesting.NewFakeOptions()
	assert.Equal(t, cmdutil.ExitFailed, run(f, "db", "--staged"))
	assert.Contains(t, f.ErrOut.String(), "not found")
}

func TestDryRunPrintsPlanAndChangesNothing(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(5)...)
	code := run(f, "db", "--staged", "--steps", "1,50%,100%", "--dry-run", "--soak", "30s",
		"--gate-exec", "pg_isready -q", "--gate-cmd", "./check.sh", "--pause-after", "1", "--step-timeout", "5m")
	require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	golden(t, "dry-run.txt", f.Out.String())
	assert.Equal(t, "7", resourceVersion(t, f))
	noRecord(t, f)
}

func TestDryRunJSON(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(4)...)
	require.Equal(t, cmdutil.ExitOK, run(f, "db", "--staged", "--dry-run", "-o", "json"), f.ErrOut.String())
	var pv rollout.Preview
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &pv))
	assert.Equal(t, rollout.ModePending, pv.Mode)
	assert.Equal(t, "db-7d4b9c6f8", pv.To)
	require.Len(t, pv.Plan.Steps, 4)
	assert.Equal(t, []string{"db-3"}, pv.Plan.Steps[0].Pods)
	assert.Equal(t, int32(0), pv.Plan.Steps[3].Partition)
}

// TestKubectlPrintersPrintThePlan: on a dry run kubectl's printers print
// the plan document; -o name the StatefulSet.
func TestKubectlPrintersPrintThePlan(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "jsonpath={.plan.steps[*].partition}"}, "3 2 1 0"},
		{[]string{"-o", "go-template={{.kind}} {{.mode}} {{len .plan.steps}}"}, "RolloutPlan pending 4"},
		{[]string{"-o", "name"}, "statefulset.apps/db\n"},
		{[]string{"-o", "jsonpath={.serverDryRun[*].write}", "--dry-run=server"}, "create configmap kubectl-sts.db (the operation record) patch statefulset db (partition 3)"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(pending(4)...)
			f.AnswerServerDryRun(func(k8stesting.Action) error { return nil })
			args := append([]string{"db", "--staged", "--dry-run"}, tc.args...)
			require.Equal(t, cmdutil.ExitOK, run(f, args...), f.ErrOut.String())
			assert.Equal(t, tc.want, f.Out.String())
			assert.Equal(t, "7", resourceVersion(t, f))
		})
	}
	f := cmdtesting.NewFakeOptions(pending(4)...)
	require.Equal(t, cmdutil.ExitOK, run(f, "db", "--staged", "--dry-run", "-o", "yaml"), f.ErrOut.String())
	assert.True(t, strings.HasPrefix(f.Out.String(), "apiVersion: kubectl-sts.io/v1alpha1\n"), f.Out.String())
	assert.Contains(t, f.Out.String(), "\nkind: RolloutPlan\n")
}

// With a kubectl printer the document is standard output's alone: the plan
// a confirmation is about goes to standard error.
func TestAPrinterKeepsThePlanOffStandardOutput(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(3)...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "db", "--staged", "-o", "name"))
	assert.Empty(t, f.Out.String())
	assert.Contains(t, f.ErrOut.String(), "Rollout plan for statefulset db")
	assert.Contains(t, f.ErrOut.String(), "re-run with --yes")
	noRecord(t, f)
}

// TestTheSubcommandsShareOneShape: every subcommand takes the same -o and
// refuses bad input the same way, before any request.
func TestTheSubcommandsShareOneShape(t *testing.T) {
	for _, sub := range []string{"resume", "undo", "abort", "status"} {
		f := cmdtesting.NewFakeOptions(pending(3)...)
		f.Client.Kube.(*fake.Clientset).ClearActions()
		assert.Equal(t, cmdutil.ExitUsage, run(f, sub, "db", "-o", "xml"), sub)
		assert.Contains(t, f.ErrOut.String(), `error: unable to match a printer suitable for the output format "xml"`, sub)
		assert.Contains(t, f.ErrOut.String(), "See 'kubectl sts rollout "+sub+" --help' for usage.", sub)
		assert.Empty(t, f.Client.Kube.(*fake.Clientset).Actions(), sub)

		f = cmdtesting.NewFakeOptions(pending(3)...)
		assert.Equal(t, cmdutil.ExitUsage, run(f, sub, "Not_A_Name"), sub)
		assert.Contains(t, f.ErrOut.String(), `"Not_A_Name" is not a valid StatefulSet name`, sub)
	}
}

// TestTheWholeRolloutTimeoutStopsCleanly: --timeout bounds the whole
// rollout; when it runs out the run stops as on Ctrl-C (no rollback, the
// record kept for resume) and exits 5.
func TestTheWholeRolloutTimeoutStopsCleanly(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(3)...)
	// No controller: the first step's pod never turns Ready.
	code := run(f, "db", "--staged", "--yes", "--timeout", "300ms", "--step-timeout", "10m")
	assert.Equal(t, cmdutil.ExitNeedsAttention, code, f.ErrOut.String())
	assert.Contains(t, f.ErrOut.String(), "error: the operation did not finish within --timeout 300ms and stopped cleanly, keeping its record: ")
	assert.NotContains(t, f.ErrOut.String(), "context canceled")
	rec, err := journal.New(f.Client.Kube, ns, "db", "other/1").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec, "the record is kept")
	assert.False(t, rec.Phase.Finished(), "phase %s", rec.Phase)
	assert.Empty(t, rec.Holder, "the lease is released, so resume starts at once")
	assert.NotContains(t, f.Out.String(), "rollback", "a timeout of the whole operation does not roll back")
}

func TestDryRunOfAChange(t *testing.T) {
	current := func(s *appsv1.StatefulSet) {
		s.Status.UpdateRevision = s.Status.CurrentRevision
		zero := int32(0)
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
	}
	f := cmdtesting.NewFakeOptions(pending(3, current)...)
	code := run(f, "db", "--staged", "--image", "db=postgres:17.0", "--env", "MODE=fast", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	golden(t, "dry-run-change.txt", f.Out.String())
	assert.Equal(t, "7", resourceVersion(t, f))
}

func TestRunWithoutTerminalOrYesRefuses(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(3)...)
	code := run(f, "db", "--staged")
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, f.ErrOut.String(), "re-run with --yes")
	assert.Contains(t, f.Out.String(), "Rollout plan for statefulset db", "the plan is shown before the question")
	assert.Equal(t, "7", resourceVersion(t, f))
	noRecord(t, f)
}

func TestSubcommandsWithoutRecord(t *testing.T) {
	for _, args := range [][]string{{"abort", "db"}, {"resume", "db", "--yes"}, {"status", "db"}} {
		f := cmdtesting.NewFakeOptions(pending(3)...)
		assert.Equal(t, cmdutil.ExitFailed, run(f, args...), args)
		assert.Contains(t, f.ErrOut.String(), "db", args)
	}
	f := cmdtesting.NewFakeOptions(pending(3)...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "undo"))
}

func TestUndoDryRun(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(3)...)
	require.Equal(t, cmdutil.ExitOK, run(f, "undo", "db", "--dry-run"), f.ErrOut.String())
	assert.Contains(t, f.Out.String(), "Rollback plan (dry run: nothing is changed)")
	assert.Contains(t, f.Out.String(), "db-7d4b9c6f8 -> db-6c9f8d7b5 (previous)")
	assert.Equal(t, "7", resourceVersion(t, f))

	assert.Equal(t, cmdutil.ExitUsage, run(cmdtesting.NewFakeOptions(pending(3)...), "undo", "db"), "needs --yes without a terminal")
}

func TestStatusShowsRecord(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(3)...)
	plan, err := rollout.BuildPlan("db", 3, 0, nil)
	require.NoError(t, err)
	j := journal.New(f.Client.Kube, ns, "db", "host/1").WithClock(func() time.Time { return cmdtesting.FakeNow }, journal.DefaultLeaseDuration)
	st := &rollout.State{ID: "x", Plan: plan, From: "db-6c9f8d7b5", To: "db-7d4b9c6f8", Stage: rollout.StageSteps, Current: 1,
		Steps: make([]rollout.StepState, 3)}
	st.Steps[0].Finished = cmdtesting.FakeNow
	rec, _, err := j.Begin(context.Background(), rollout.Operation, st)
	require.NoError(t, err)
	require.NoError(t, j.Save(context.Background(), rec, st, "step 1 of 3 passed"))

	require.Equal(t, cmdutil.ExitOK, run(f, "status", "db"), f.ErrOut.String())
	golden(t, "status.txt", f.Out.String())

	f.Out.Reset()
	require.Equal(t, cmdutil.ExitOK, run(f, "history", "db", "-o", "json"), f.ErrOut.String())
	var rep rollout.Report
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &rep))
	assert.True(t, rep.Live)
	assert.Equal(t, 1, rep.State.Current)

	// A second run is refused while the lease is live.
	g := cmdtesting.NewFakeOptionsWithClient(f.Client, nil)
	assert.Equal(t, cmdutil.ExitFailed, run(g, "db", "--staged", "--yes"))
	assert.Contains(t, g.ErrOut.String(), "held by host/1 (last heartbeat 0s ago at 2026-01-02T15:04:05Z; its lease expires at 2026-01-02T15:04:35Z, in 30s)")
}

func TestDryRunStrategies(t *testing.T) {
	client := cmdtesting.NewFakeOptions(pending(5)...)
	require.Equal(t, cmdutil.ExitOK, run(client, "db", "--staged", "--dry-run=client"), client.ErrOut.String())
	bare := cmdtesting.NewFakeOptions(pending(5)...)
	require.Equal(t, cmdutil.ExitOK, run(bare, "db", "--staged", "--dry-run"), bare.ErrOut.String())
	assert.Equal(t, bare.Out.String(), client.Out.String(), "--dry-run alone means client")
	assert.Contains(t, client.Out.String(), "dry run")

	for _, args := range [][]string{{"db", "--staged", "--dry-run=maybe"}, {"undo", "db", "--dry-run=maybe"}, {"resume", "db", "--dry-run=maybe"}} {
		f := cmdtesting.NewFakeOptions(pending(5)...)
		assert.Equal(t, cmdutil.ExitUsage, run(f, args...), args)
		assert.Contains(t, f.ErrOut.String(), `Invalid dry-run value (maybe). Must be "none", "server", or "client".`)
	}

	// none runs for real (and here needs --yes).
	f := cmdtesting.NewFakeOptions(pending(5)...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "db", "--staged", "--dry-run=none"))
	assert.Contains(t, f.ErrOut.String(), "re-run with --yes")
}

func TestServerDryRunSendsTheFirstWritesAndReportsTheAnswers(t *testing.T) {
	f := cmdtesting.NewFakeOptions(pending(5)...)
	seen := f.AnswerServerDryRun(func(k8stesting.Action) error { return nil })
	require.Equal(t, cmdutil.ExitOK, run(f, "db", "--staged", "--steps", "1,100%", "--dry-run=server"), f.ErrOut.String())
	assert.Equal(t, []string{"create configmaps", "patch statefulsets"}, seen())
	assert.Contains(t, f.Out.String(), "Rollout plan (dry run: nothing is changed) for statefulset db")
	assert.Contains(t, f.Out.String(), "  accepted  create configmap kubectl-sts.db (the operation record)\n")
	assert.Contains(t, f.Out.String(), "  accepted  patch statefulset db (partition 4)\n")
	assert.Equal(t, "7", resourceVersion(t, f))
	noRecord(t, f)
}

func TestServerDryRunReportsARefusalOfTheNewTemplate(t *testing.T) {
	current := func(s *appsv1.StatefulSet) {
		s.Status.UpdateRevision = s.Status.CurrentRevision
		zero := int32(0)
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
	}
	f := cmdtesting.NewFakeOptions(pending(3, current)...)
	seen := f.AnswerServerDryRun(func(a k8stesting.Action) error {
		if u, ok := a.(k8stesting.UpdateActionImpl); ok {
			sts := u.GetObject().(*appsv1.StatefulSet)
			if sts.Spec.Template.Spec.Containers[0].Image == "postgres:bad" && *sts.Spec.UpdateStrategy.RollingUpdate.Partition == 3 {
				return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db", errors.New("image postgres:bad is forbidden"))
			}
		}
		return nil
	})
	code := run(f, "db", "--staged", "--image", "db=postgres:bad", "--dry-run=server", "-o", "json")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Equal(t, []string{"create configmaps", "update statefulsets"}, seen())
	assert.Contains(t, f.ErrOut.String(), "the API server would refuse update statefulset db (new pod template, partition 3): ")
	assert.Contains(t, f.ErrOut.String(), "image postgres:bad is forbidden")
	var out struct {
		Mode         rollout.Mode `json:"mode"`
		ServerDryRun []struct{ Write, Refused string }
	}
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &out))
	assert.Equal(t, rollout.ModeChange, out.Mode)
	require.Len(t, out.ServerDryRun, 2)
	assert.Empty(t, out.ServerDryRun[0].Refused)
	assert.Contains(t, out.ServerDryRun[1].Refused, "forbidden")
	assert.Equal(t, "7", resourceVersion(t, f))
	noRecord(t, f)

	f = cmdtesting.NewFakeOptions(pending(3)...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "undo", "db", "--dry-run=server"))
	assert.Contains(t, f.ErrOut.String(), "--dry-run=server is not implemented for a rollback")
}

// TestJSONAndYAMLPrintOneDocument: -o json prints the document -o yaml
// prints, apiVersion and kind included, whichever dry run made it; and
// rollout status likewise, so scripts can check .kind either way.
func TestJSONAndYAMLPrintOneDocument(t *testing.T) {
	withRecord := func(t *testing.T, f *cmdtesting.Fake) {
		plan, err := rollout.BuildPlan("db", 3, 0, nil)
		require.NoError(t, err)
		j := journal.New(f.Client.Kube, ns, "db", "host/1").WithClock(func() time.Time { return cmdtesting.FakeNow }, journal.DefaultLeaseDuration)
		st := &rollout.State{ID: "x", Plan: plan, From: "db-6c9f8d7b5", To: "db-7d4b9c6f8", Stage: rollout.StageSteps, Current: 1,
			Steps: make([]rollout.StepState, 3)}
		_, _, err = j.Begin(context.Background(), rollout.Operation, st)
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		args   []string
		kind   string
		record bool
	}{
		{[]string{"db", "--staged", "--dry-run=client"}, "RolloutPlan", false},
		{[]string{"db", "--staged", "--dry-run=server"}, "RolloutPlan", false},
		{[]string{"status", "db"}, "RolloutStatus", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			docs := map[string]map[string]any{}
			for _, format := range []string{"json", "yaml"} {
				f := cmdtesting.NewFakeOptions(pending(3)...)
				f.AnswerServerDryRun(func(k8stesting.Action) error { return nil })
				if tc.record {
					withRecord(t, f)
				}
				require.Equal(t, cmdutil.ExitOK, run(f, append(tc.args, "-o", format)...), f.ErrOut.String())
				b := f.Out.Bytes()
				if format == "yaml" {
					var err error
					b, err = sigsyaml.YAMLToJSON(b)
					require.NoError(t, err)
				}
				var doc map[string]any
				require.NoError(t, json.Unmarshal(b, &doc), format)
				docs[format] = doc
			}
			assert.Equal(t, "kubectl-sts.io/v1alpha1", docs["json"]["apiVersion"])
			assert.Equal(t, tc.kind, docs["json"]["kind"])
			// Times and the live flag of a record read twice may differ;
			// the rest is one document.
			for _, d := range docs {
				delete(d, "observedAt")
			}
			assert.Equal(t, docs["yaml"], docs["json"])
		})
	}
}
