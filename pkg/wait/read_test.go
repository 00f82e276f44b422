package wait

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func testClaim(name string, labels map[string]string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: labels}}
}

func controlledClaim(c *corev1.PersistentVolumeClaim, kind, name string, uid types.UID) *corev1.PersistentVolumeClaim {
	c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
	return c
}

func TestOwnsClaimIsTheControllersNameRule(t *testing.T) {
	sts := newSTS("db", 1, 1)
	sts.Spec.VolumeClaimTemplates = append(sts.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "wal"}})
	lbl := map[string]string{"app": "db"}
	cases := []struct {
		name     string
		pvc      *corev1.PersistentVolumeClaim
		ok       bool
		template string
		ordinal  int
	}{
		{"made by the controller", testClaim("data-db-4", lbl), true, "data", 4},
		{"second template", testClaim("wal-db-7", lbl), true, "wal", 7},
		{"no labels (made before the controller labelled claims, or by hand)", testClaim("data-db-2", nil), true, "data", 2},
		{"labels edited", testClaim("data-db-2", map[string]string{"app": "other"}), true, "data", 2},
		{"controlled by this statefulset", controlledClaim(testClaim("data-db-1", lbl), "StatefulSet", "db", sts.UID), true, "data", 1},
		{"controlled by another kind", controlledClaim(testClaim("data-db-1", lbl), "Restore", "r", "r-uid"), true, "data", 1},
		{"controlled by an earlier statefulset of the same name", controlledClaim(testClaim("data-db-1", lbl), "StatefulSet", "db", "old-uid"), false, "", 0},
		{"controlled by another statefulset", controlledClaim(testClaim("data-db-1", lbl), "StatefulSet", "web", "web-uid"), false, "", 0},
		{"unknown template", testClaim("backup-db-4", lbl), false, "", 0},
		{"another statefulset with a longer name", testClaim("data-db-archive-4", lbl), false, "", 0},
		{"another statefulset whose name ends like an ordinal", testClaim("data-db-1-0", lbl), false, "", 0},
		{"suffix after the ordinal", testClaim("data-db-4-old", lbl), false, "", 0},
		{"leading zero", testClaim("data-db-04", lbl), false, "", 0},
		{"not a number", testClaim("data-db-x", lbl), false, "", 0},
		{"other namespace", func() *corev1.PersistentVolumeClaim {
			c := testClaim("data-db-4", lbl)
			c.Namespace = "staging"
			return c
		}(), false, "", 0},
		{"nil", nil, false, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, n, ok := OwnsClaim(sts, c.pvc)
			assert.Equal(t, c.ok, ok)
			assert.Equal(t, c.template, tmpl)
			assert.Equal(t, c.ordinal, n)
		})
	}
}

func TestOwnsClaimWithTemplatesThatArePrefixesOfEachOther(t *testing.T) {
	sts := newSTS("db", 1, 1)
	sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{
		{ObjectMeta: metav1.ObjectMeta{Name: "data"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "data-db"}},
	}
	tmpl, n, ok := OwnsClaim(sts, testClaim("data-db-db-3", nil))
	assert.True(t, ok)
	assert.Equal(t, "data-db", tmpl)
	assert.Equal(t, 3, n)
	tmpl, _, ok = OwnsClaim(sts, testClaim("data-db-3", nil))
	assert.True(t, ok)
	assert.Equal(t, "data", tmpl)
}

func TestOwnsClaimWithAMatchExpressionsSelector(t *testing.T) {
	// The controller copies only matchLabels onto claims: with none, its
	// claims carry no selector labels at all, and are still its claims.
	sts := newSTS("db", 1, 1)
	sts.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"db"}}}}
	_, n, ok := OwnsClaim(sts, testClaim("data-db-0", nil))
	assert.True(t, ok)
	assert.Equal(t, 0, n)
}

func TestOwnsPod(t *testing.T) {
	sts := newSTS("db", 1, 1)
	other := func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "old-uid", Controller: ptr.To(true)}}
	}
	mine := func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: sts.UID, Controller: ptr.To(true)}}
	}
	relabel := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }
	cases := []struct {
		name string
		pod  *corev1.Pod
		ok   bool
	}{
		{"controlled by it", newPod("db", 2, "u", "r", mine), true},
		{"orphaned", newPod("db", 2, "u", "r"), true},
		{"controlled by another object", newPod("db", 2, "u", "r", other), false},
		{"selector does not match", newPod("db", 2, "u", "r", relabel), false},
		{"another statefulset's pod", newPod("dbx", 2, "u", "r"), false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, ok := OwnsPod(sts, c.pod)
			assert.Equal(t, c.ok, ok)
			if ok {
				assert.Equal(t, 2, n)
			}
		})
	}
}

func TestReadMakesThreeRequestsWithASelectorOnPods(t *testing.T) {
	sts := newSTS("db", 1, 1)
	objs := []runtime.Object{
		sts,
		newPod("db", 2, "u2", "r"), newPod("db", 0, "u0", "r"), newPod("db", 1, "u1", "r"),
		newPod("web", 0, "w0", "r"),
		testClaim("data-db-1", nil), testClaim("data-db-0", map[string]string{"app": "db"}),
		testClaim("data-web-0", map[string]string{"app": "web"}),
	}
	c := fake.NewClientset(objs...)
	c.ClearActions()
	got, err := Read(context.Background(), c, testNS, "db")
	require.NoError(t, err)

	var requests []string
	for _, a := range c.Actions() {
		r := a.GetVerb() + " " + a.GetResource().Resource
		if l, ok := a.(k8stesting.ListActionImpl); ok && l.GetResource().Resource == "pods" {
			r += " " + l.GetListRestrictions().Labels.String()
		}
		requests = append(requests, r)
	}
	assert.Equal(t, []string{"get statefulsets", "list pods app=db", "list persistentvolumeclaims"}, requests)
	assert.Equal(t, []string{"db-0", "db-1", "db-2"}, podNames(got.Pods))
	assert.Equal(t, []string{"data-db-0", "data-db-1"}, claimNames(got.PVCs), "claims are the statefulset's by name, labelled or not, in ordinal order")
}

func TestReadAllFindsClaimsByName(t *testing.T) {
	db, web := newSTS("db", 1, 1), newSTS("web", 1, 1)
	c := fake.NewClientset(db, web,
		testClaim("data-db-0", nil), testClaim("data-web-0", map[string]string{"app": "web"}), testClaim("data-web-3", nil))
	all, err := ReadAll(context.Background(), c, testNS, "")
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "db", all[0].StatefulSet.Name)
	assert.Equal(t, []string{"data-db-0"}, claimNames(all[0].PVCs))
	assert.Equal(t, []string{"data-web-0", "data-web-3"}, claimNames(all[1].PVCs))
}

func TestTrackerFindsClaimsByNameAsReadDoes(t *testing.T) {
	sts := newSTS("db", 1, 1)
	cs := newCluster(sts,
		testClaim("data-db-0", map[string]string{"app": "db"}),
		testClaim("data-db-5", nil), // a leftover without the selector's labels
		controlledClaim(testClaim("data-db-1", nil), "StatefulSet", "db", "old-uid"),
	)
	tr := startTracker(t, cs, WithPVCs())
	s := tr.Snapshot()
	var names []string
	for n := range s.PVCs {
		names = append(names, n)
	}
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-5"}, names)

	// The one-shot reader sees the same claims.
	objs, err := Read(context.Background(), cs, testNS, "db")
	require.NoError(t, err)
	assert.ElementsMatch(t, names, claimNames(objs.PVCs))
}

func podNames(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func claimNames(pvcs []*corev1.PersistentVolumeClaim) []string {
	var out []string
	for _, c := range pvcs {
		out = append(out, c.Name)
	}
	return out
}
