package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const testNS = "default"

// fakeCluster is a fake clientset with a small StatefulSet controller:
// enough of the real one's behaviour (revisions, partition, highest
// ordinal first, OrderedReady blocking on a pod that is not Ready, pods
// recreated with a new UID) to drive the workflow in unit tests. Images
// tagged ":broken" never become Ready, as in the test bed.
type fakeCluster struct {
	t  *testing.T
	cs *fake.Clientset

	mu      sync.Mutex
	seq     int
	changes []string // "pod:revision" for every pod created
	paused  bool
	events  eventLog
}

var stsGVR = appsv1.SchemeGroupVersion.WithResource("statefulsets")

func newFakeCluster(t *testing.T, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	c := &fakeCluster{t: t, cs: fake.NewClientset(objs...)}
	tracker := c.cs.Tracker()
	react := k8stesting.ObjectReaction(tracker)
	// The API server bumps metadata.generation when the spec changes; the
	// fake tracker does not.
	c.cs.PrependReactor("*", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			// Only the status changes, as in the API server.
			in := a.(k8stesting.UpdateAction).GetObject().(*appsv1.StatefulSet)
			cur, err := tracker.Get(stsGVR, a.GetNamespace(), in.Name)
			if err != nil {
				return true, nil, err
			}
			out := cur.(*appsv1.StatefulSet).DeepCopy()
			out.Status = in.Status
			return true, out, tracker.Update(stsGVR, out, a.GetNamespace())
		}
		if (a.GetVerb() != "update" && a.GetVerb() != "patch") || a.GetSubresource() != "" {
			return false, nil, nil
		}
		var name string
		switch act := a.(type) {
		case k8stesting.UpdateAction:
			name = act.GetObject().(*appsv1.StatefulSet).Name
		case k8stesting.PatchAction:
			name = act.GetName()
		}
		oldObj, err := tracker.Get(stsGVR, a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		old := oldObj.(*appsv1.StatefulSet)
		handled, obj, err := react(a)
		if err != nil || obj == nil {
			return handled, obj, err
		}
		sts := obj.(*appsv1.StatefulSet).DeepCopy()
		sts.Generation = old.Generation
		if !equality.Semantic.DeepEqual(old.Spec, sts.Spec) {
			sts.Generation++
		}
		sts.Status = old.Status
		if err := tracker.Update(stsGVR, sts, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, sts, nil
	})
	return c
}

// start runs the controller until the test ends.
func (c *fakeCluster) start(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			c.reconcile(ctx, name)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
}

// setPaused stops and restarts the controller's work.
func (c *fakeCluster) setPaused(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = p
}

func (c *fakeCluster) podChanges() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.changes...)
}

func revisionData(t corev1.PodTemplateSpec) []byte {
	raw, _ := json.Marshal(t)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["$patch"] = "replace"
	out, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
	return out
}

func revisionName(sts *appsv1.StatefulSet) string {
	raw, _ := json.Marshal(sts.Spec.Template)
	sum := sha256.Sum256(raw)
	return sts.Name + "-" + hex.EncodeToString(sum[:])[:8]
}

// ensureRevision finds or creates the ControllerRevision of the current
// template and makes it the newest, as the real controller does.
func (c *fakeCluster) ensureRevision(ctx context.Context, sts *appsv1.StatefulSet) (string, error) {
	name := revisionName(sts)
	api := c.cs.AppsV1().ControllerRevisions(sts.Namespace)
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var maxRev int64
	var found *appsv1.ControllerRevision
	for i := range list.Items {
		cr := &list.Items[i]
		if cr.Revision > maxRev {
			maxRev = cr.Revision
		}
		if cr.Name == name {
			found = cr
		}
	}
	switch {
	case found == nil:
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sts.Namespace, Labels: sts.Spec.Selector.MatchLabels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}},
			Data:     runtime.RawExtension{Raw: revisionData(sts.Spec.Template)},
			Revision: maxRev + 1,
		}
		if _, err := api.Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	case found.Revision < maxRev:
		found.Revision = maxRev + 1
		if _, err := api.Update(ctx, found, metav1.UpdateOptions{}); err != nil {
			return "", err
		}
	}
	return name, nil
}

func (c *fakeCluster) templateOf(ctx context.Context, ns, rev string) (corev1.PodTemplateSpec, error) {
	cr, err := c.cs.AppsV1().ControllerRevisions(ns).Get(ctx, rev, metav1.GetOptions{})
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	err = json.Unmarshal(cr.Data.Raw, &data)
	return data.Spec.Template, err
}

func (c *fakeCluster) reconcile(ctx context.Context, name string) {
	sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	// Paused is checked after the read: a sync never acts on a change
	// written after the pause.
	c.mu.Lock()
	paused := c.paused
	c.mu.Unlock()
	if paused {
		return
	}
	update, err := c.ensureRevision(ctx, sts)
	if err != nil {
		return
	}
	current := sts.Status.CurrentRevision
	if current == "" {
		current = update
	}
	replicas, start, partition := Replicas(sts), OrdinalsStart(sts), Partition(sts)
	pods := map[int32]*corev1.Pod{}
	for idx := int32(0); idx < replicas; idx++ {
		p, err := c.cs.CoreV1().Pods(testNS).Get(ctx, fmt.Sprintf("%s-%d", name, start+idx), metav1.GetOptions{})
		if err == nil {
			pods[idx] = p
		}
	}
	acted := false
	// Create or wait, in ordinal order (OrderedReady).
	for idx := int32(0); idx < replicas && !acted; idx++ {
		p := pods[idx]
		if p == nil {
			rev := update
			if sts.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && idx < partition {
				rev = current
			}
			c.createPod(ctx, sts, start+idx, rev)
			acted = true
			break
		}
		if !podReady(p) && sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			acted = true // blocked: the stuck rollout trap
		}
	}
	if !acted && sts.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		for idx := replicas - 1; idx >= partition && idx >= 0; idx-- {
			p := pods[idx]
			if p != nil && p.Labels[appsv1.StatefulSetRevisionLabel] != update {
				_ = c.cs.CoreV1().Pods(testNS).Delete(ctx, p.Name, metav1.DeleteOptions{})
				acted = true
				break
			}
		}
	}
	// Status.
	var ready, updated int32
	list, _ := c.cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{})
	for _, p := range list.Items {
		if !strings.HasPrefix(p.Name, name+"-") {
			continue
		}
		if podReady(&p) {
			ready++
		}
		if p.Labels[appsv1.StatefulSetRevisionLabel] == update {
			updated++
		}
	}
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation, Replicas: int32(len(list.Items)), ReadyReplicas: ready, AvailableReplicas: ready,
		UpdatedReplicas: updated, CurrentRevision: current, UpdateRevision: update,
	}
	if updated == replicas && ready == replicas {
		st.CurrentRevision = update
	}
	if !equality.Semantic.DeepEqual(st, sts.Status) {
		sts.Status = st
		_, _ = c.cs.AppsV1().StatefulSets(testNS).UpdateStatus(ctx, sts, metav1.UpdateOptions{})
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *fakeCluster) createPod(ctx context.Context, sts *appsv1.StatefulSet, ordinal int32, rev string) {
	t, err := c.templateOf(ctx, sts.Namespace, rev)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.seq++
	uid := types.UID(fmt.Sprintf("uid-%d", c.seq))
	c.mu.Unlock()
	labels := map[string]string{appsv1.StatefulSetRevisionLabel: rev}
	for k, v := range t.Labels {
		labels[k] = v
	}
	ready := corev1.ConditionTrue
	for _, ct := range t.Spec.Containers {
		if strings.HasSuffix(ct.Image, ":broken") {
			ready = corev1.ConditionFalse
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", sts.Name, ordinal), Namespace: sts.Namespace, UID: uid, Labels: labels},
		Spec:       t.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()},
		}},
	}
	for _, ct := range t.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: ct.Name, Ready: ready == corev1.ConditionTrue})
	}
	if _, err := c.cs.CoreV1().Pods(sts.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err == nil {
		c.mu.Lock()
		c.changes = append(c.changes, pod.Name+":"+rev)
		c.mu.Unlock()
	}
}

// newSTS returns a StatefulSet with the partition holding nothing.
func newSTS(name string, replicas int32, image string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("sts-" + name), Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: image}}},
			},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32)}},
		},
	}
}

// waitSettled waits until every pod of the StatefulSet is Ready at one
// revision and the status says so.
func (c *fakeCluster) waitSettled(name string) *appsv1.StatefulSet {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && sts.Status.ObservedGeneration == sts.Generation && sts.Status.ReadyReplicas == Replicas(sts) &&
			sts.Status.UpdatedReplicas == Replicas(sts) && sts.Status.CurrentRevision == sts.Status.UpdateRevision && sts.Status.UpdateRevision != "" {
			return sts
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("statefulset %s did not settle", name)
	return nil
}

func (c *fakeCluster) sts(name string) *appsv1.StatefulSet {
	c.t.Helper()
	sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return sts
}

func (c *fakeCluster) pods(name string) map[string]*corev1.Pod {
	c.t.Helper()
	list, err := c.cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		if strings.HasPrefix(list.Items[i].Name, name+"-") {
			out[list.Items[i].Name] = &list.Items[i]
		}
	}
	return out
}

// eventLog records Kubernetes Events in memory (the fake clientset does
// not implement generateName, which real Events use).
type eventLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *eventLog) Event(_ context.Context, _ *corev1.ObjectReference, _, reason, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reasons = append(l.reasons, reason)
	return nil
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}
