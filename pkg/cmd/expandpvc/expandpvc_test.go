package expandpvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
)

func ptr[T any](v T) *T { return &v }

// objects is a Ready StatefulSet "db" of n ordinals with 1Gi claims of
// StorageClass class ("fast" allows expansion, "fixed" does not).
func objects(n int, class string) []runtime.Object {
	labels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "sts-uid"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr(class),
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
			}},
		},
		Status: appsv1.StatefulSetStatus{Replicas: int32(n), ReadyReplicas: int32(n), AvailableReplicas: int32(n), UpdatedReplicas: int32(n), CurrentRevision: "db-1", UpdateRevision: "db-1"},
	}
	objs := []runtime.Object{sts,
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, AllowVolumeExpansion: ptr(true)},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fixed"}, AllowVolumeExpansion: ptr(false)},
	}
	for i := 0; i < n; i++ {
		objs = append(objs,
			&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d", i), Namespace: "default", UID: "pod-uid",
					Labels:          map[string]string{"app": "db", appsv1.StatefulSetRevisionLabel: "db-1"},
					OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db", UID: "sts-uid", Controller: ptr(true)}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			},
			&corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("data-db-%d", i), Namespace: "default", UID: "pvc-uid"},
				Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr(class),
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
				Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			})
	}
	return objs
}

// newFake returns the fake command environment over objs. Dry-run patches
// change nothing, as on a real API server; other patches of a claim's
// request are honoured at once by a simulated online resize.
func newFake(objs ...runtime.Object) *cmdtesting.Fake {
	f := cmdtesting.NewFakeOptions(objs...)
	cs := f.Client.Kube.(*fake.Clientset)
	tracker := cs.Tracker()
	apply := clienttesting.ObjectReaction(tracker)
	cs.PrependReactor("patch", "persistentvolumeclaims", func(a clienttesting.Action) (bool, runtime.Object, error) {
		pa := a.(clienttesting.PatchActionImpl)
		if len(pa.PatchOptions.DryRun) > 0 {
			obj, err := tracker.Get(pa.GetResource(), pa.GetNamespace(), pa.GetName())
			return true, obj, err
		}
		handled, obj, err := apply(a)
		if err != nil {
			return handled, obj, err
		}
		pvc := obj.(*corev1.PersistentVolumeClaim)
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]}
		return true, pvc, tracker.Update(pa.GetResource(), pvc, pa.GetNamespace())
	})
	// The fake does not generate names; the API server does.
	seq := 0
	cs.PrependReactor("create", "events", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ev := a.(clienttesting.CreateActionImpl).GetObject().(*corev1.Event)
		if ev.Name == "" {
			seq++
			ev.Name = fmt.Sprintf("%s%d", ev.GenerateName, seq)
		}
		return false, nil, nil
	})
	return f
}

func run(f *cmdtesting.Fake, args ...string) int {
	return f.Run(context.Background(), cmd.Run, append([]string{"expand-pvc"}, args...)...)
}

func request(t *testing.T, f *cmdtesting.Fake, name string) string {
	t.Helper()
	pvc, err := f.Client.Kube.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

func noRecord(t *testing.T, f *cmdtesting.Fake) {
	t.Helper()
	rec, err := journal.New(f.Client.Kube, "default", "db", "test").Load(context.Background())
	require.NoError(t, err)
	assert.Nil(t, rec, "nothing was recorded")
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--size", "2Gi"}, "needs the name of a StatefulSet"},
		{[]string{"db"}, "--size is required"},
		{[]string{"db", "--size", "20GB"}, "did you mean 20Gi"},
		{[]string{"db", "--size", "2Gi", "--restart", "sometimes"}, `--restart "sometimes" is not valid: use auto, always or never`},
		{[]string{"db", "--size", "2Gi", "--update-template", "--no-update-template"}, "contradict each other"},
		{[]string{"db", "--size", "2Gi", "--engine", "oracle"}, `unknown engine "oracle"`},
		{[]string{"db", "--size", "2Gi", "-o", "xml"}, `unable to match a printer suitable for the output format "xml"`},
		{[]string{"db", "--size", "2Gi", "--step-timeout", "0s"}, "--step-timeout must be positive"},
		{[]string{"db", "--size", "2Gi", "--timeout", "-1m"}, "--timeout cannot be negative"},
		{[]string{"db", "--size", "2Gi", "--claim", "Bad_Name"}, "is not a valid volumeClaimTemplate name"},
		{[]string{"DB", "--size", "2Gi"}, "is not a valid StatefulSet name"},
	} {
		f := newFake(objects(1, "fast")...)
		code := run(f, tc.args...)
		assert.Equal(t, cmdutil.ExitUsage, code, tc.args)
		assert.Contains(t, f.ErrOut.String(), tc.want, tc.args)
		assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
	}
}

func TestDryRunPrintsThePlanAndChangesNothing(t *testing.T) {
	f := newFake(objects(2, "fast")...)
	code := run(f, "db", "--size", "2Gi", "--dry-run")
	require.Equal(t, 0, code, f.ErrOut.String())
	out := f.Out.String()
	assert.Contains(t, out, "Plan: grow claim data of statefulset db (namespace default) to 2Gi, one ordinal at a time")
	assert.Regexp(t, `(?m)^1\s+1\s+data-db-1\s+fast\s+1Gi\s+1Gi\s+2Gi\s+expand\s+if needed$`, out)
	assert.Regexp(t, `(?m)^2\s+0\s+data-db-0\s+fast\s+1Gi\s+1Gi\s+2Gi\s+expand\s+if needed$`, out)
	assert.Contains(t, out, "Template: volumeClaimTemplate data 1Gi -> 2Gi")
	assert.Contains(t, out, "Dry run: nothing was changed.")
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
	assert.Equal(t, "1Gi", request(t, f, "data-db-1"))
	noRecord(t, f)
}

func TestServerDryRunReportsTheClaimPatchesTheServerJudged(t *testing.T) {
	f := newFake(objects(2, "fast")...)
	seen := f.AnswerServerDryRun(func(clienttesting.Action) error { return nil })
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--dry-run=server"), f.ErrOut.String())
	assert.Equal(t, []string{"patch persistentvolumeclaims", "patch persistentvolumeclaims"}, seen())
	assert.Contains(t, f.Out.String(), "Server dry run (sent with dryRun=All; nothing was changed):\n  accepted  patch pvc data-db-1 (request 2Gi)\n  accepted  patch pvc data-db-0 (request 2Gi)\n")
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
	noRecord(t, f)

	f = newFake(objects(2, "fast")...)
	f.AnswerServerDryRun(func(clienttesting.Action) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "persistentvolumeclaims"}, "data-db-1", errors.New("exceeded quota: storage"))
	})
	assert.Equal(t, cmdutil.ExitFailed, run(f, "db", "--size", "2Gi", "--dry-run=server"))
	assert.Contains(t, f.ErrOut.String(), "exceeded quota: storage")

	f = newFake(objects(2, "fast")...)
	assert.Equal(t, cmdutil.ExitUsage, run(f, "db", "--size", "2Gi", "--dry-run=later"))
	assert.Contains(t, f.ErrOut.String(), `Invalid dry-run value (later)`)
}

func TestDryRunJSONIsTheModel(t *testing.T) {
	f := newFake(objects(1, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--dry-run", "-o", "json"), f.ErrOut.String())
	lines := strings.Split(strings.TrimSpace(f.Out.String()), "\n")
	require.Len(t, lines, 1)
	var doc struct {
		Kind   string `json:"kind"`
		DryRun bool   `json:"dryRun"`
		Plan   struct {
			Size     string `json:"size"`
			Ordinals []struct {
				PVC    string `json:"pvc"`
				Action string `json:"action"`
			} `json:"ordinals"`
			Template struct {
				Update bool `json:"update"`
			} `json:"template"`
		} `json:"plan"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &doc))
	assert.Equal(t, "ExpandPVCPlan", doc.Kind)
	assert.True(t, doc.DryRun)
	assert.Equal(t, "2Gi", doc.Plan.Size)
	assert.Equal(t, "data-db-0", doc.Plan.Ordinals[0].PVC)
	assert.Equal(t, "expand", doc.Plan.Ordinals[0].Action)
	assert.True(t, doc.Plan.Template.Update)
}

func TestRefusalExitsOneWithNothingChanged(t *testing.T) {
	f := newFake(objects(2, "fixed")...)
	code := run(f, "db", "--size", "2Gi", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), "StorageClass fixed does not allow volume expansion")
	assert.Contains(t, f.ErrOut.String(), "kubectl patch storageclass fixed")
	assert.NotContains(t, f.ErrOut.String(), "--help", "a refusal is not a flag mistake")
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
	noRecord(t, f)
}

func TestWithoutATerminalItNeedsYes(t *testing.T) {
	f := newFake(objects(1, "fast")...)
	code := run(f, "db", "--size", "2Gi")
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, f.ErrOut.String(), "needs confirmation, and there is no terminal to ask on")
	assert.Contains(t, f.Out.String(), "Plan:", "the plan is shown before the question")
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
	noRecord(t, f)
}

func TestConfirmationNoChangesNothing(t *testing.T) {
	f := newFake(objects(1, "fast")...)
	f.Options.StdinIsTerminal = func() bool { return true }
	f.In.WriteString("n\n")
	code := run(f, "db", "--size", "2Gi")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, f.ErrOut.String(), "Grow 1 claim of statefulset db to 2Gi")
	assert.Contains(t, f.ErrOut.String(), "not confirmed; nothing was changed")
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))
}

func TestRunGrowsTheClaims(t *testing.T) {
	f := newFake(objects(2, "fast")...)
	code := run(f, "db", "--size", "2Gi", "--yes", "--no-update-template")
	require.Equal(t, 0, code, f.ErrOut.String())
	assert.Equal(t, "2Gi", request(t, f, "data-db-0"))
	assert.Equal(t, "2Gi", request(t, f, "data-db-1"))
	out := f.Out.String()
	assert.Contains(t, out, "Template: unchanged (--no-update-template")
	assert.Contains(t, out, "step 1/2 pvc/data-db-1 requested 2Gi for pvc data-db-1 (was 1Gi)")
	assert.Contains(t, out, "pvc data-db-0 has 2Gi and pod db-0 is Ready")
	assert.Contains(t, out, "2 expanded, 0 already done, 0 pods restarted")

	rec, err := journal.New(f.Client.Kube, "default", "db", "test").Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, journal.Succeeded, rec.Phase)

	events, err := f.Client.Kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	assert.Contains(t, reasons, "PVCExpanded")
	assert.Contains(t, reasons, "ExpandPVCSucceeded")

	// Again: nothing to do.
	again := cmdtesting.NewFakeOptionsWithClient(f.Client, nil)
	require.Equal(t, 0, again.Run(context.Background(), cmd.Run, "expand-pvc", "db", "--size", "2Gi", "--yes", "--no-update-template"), again.ErrOut.String())
	assert.Contains(t, again.Out.String(), "Nothing to do: every claim already has 2Gi.")
}

func TestRunJSONLines(t *testing.T) {
	f := newFake(objects(1, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--yes", "--no-update-template", "-o", "json"), f.ErrOut.String())
	lines := strings.Split(strings.TrimSpace(f.Out.String()), "\n")
	require.Greater(t, len(lines), 3)
	kinds := make([]string, 0, len(lines))
	for _, l := range lines {
		var v struct {
			Kind string `json:"kind"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &v), l)
		kinds = append(kinds, v.Kind)
	}
	assert.Equal(t, "ExpandPVCPlan", kinds[0])
	assert.Equal(t, "ExpandPVCResult", kinds[len(kinds)-1])
	assert.Contains(t, kinds, "pvc-resized")
}

// kubectl's printers print the plan of a dry run, and the result of a run;
// progress then goes to standard error, so standard output holds the
// document alone.
func TestKubectlPrinters(t *testing.T) {
	f := newFake(objects(2, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--dry-run", "-o", "jsonpath={.plan.ordinals[*].pvc} {.plan.size}"), f.ErrOut.String())
	assert.Equal(t, "data-db-1 data-db-0 2Gi", f.Out.String())

	f = newFake(objects(2, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--dry-run", "-o", "name"), f.ErrOut.String())
	assert.Equal(t, "statefulset.apps/db\n", f.Out.String())
	assert.Equal(t, "1Gi", request(t, f, "data-db-0"))

	f = newFake(objects(2, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--yes", "--no-update-template", "-o", "name"), f.ErrOut.String())
	assert.Equal(t, "statefulset.apps/db\n", f.Out.String())
	assert.Contains(t, f.ErrOut.String(), "step 1/2 pvc/data-db-1 requested 2Gi for pvc data-db-1 (was 1Gi)", "progress goes to standard error")
	assert.Equal(t, "2Gi", request(t, f, "data-db-0"))

	f = newFake(objects(1, "fast")...)
	require.Equal(t, 0, run(f, "db", "--size", "2Gi", "--yes", "--no-update-template", "-o", "go-template={{.kind}}"), f.ErrOut.String())
	assert.Equal(t, "ExpandPVCResult", f.Out.String())
}
