package kubefake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
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

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// StatefulSetGVR is the StatefulSets resource.
var StatefulSetGVR = appsv1.SchemeGroupVersion.WithResource("statefulsets")

// Controller is the one fake StatefulSet controller of the unit tests: it
// drives a fake clientset with enough of the real controller's behaviour
// to run the workflows against it. It keeps ControllerRevisions of the
// template; creates missing pods from their revision's template in
// ordinal order, waiting for each to be Ready (OrderedReady); adopts
// orphaned pods; replaces pods not at the update revision from the
// highest ordinal down to the partition; removes pods above the replica
// count from the highest down; and keeps the status. Pods whose image is
// tagged ":broken" never become Ready, as in the test bed. Create it with
// NewController, which also makes the clientset bump metadata.generation
// on spec changes and honour the status subresource, as the API server
// does.
type Controller struct {
	cs        *fake.Clientset
	namespace string

	mu      sync.Mutex
	seq     int
	changes []string // "pod:revision" for every pod created
	paused  bool
	// reactors are the tests' own, consulted before the controller's:
	// see React.
	reactors []k8stesting.Reactor
	// ScaleDownDelay is how long the controller waits before it removes
	// a pod above the replica count.
	ScaleDownDelay time.Duration
	// OnPodRemoved, if set, is called with the name of each pod the
	// controller removed on a scale-down.
	OnPodRemoved func(name string)
}

// NewController returns the controller of the StatefulSets of namespace
// in cs, and installs cs's StatefulSet reactors. Start runs it.
func NewController(cs *fake.Clientset, namespace string) *Controller {
	c := &Controller{cs: cs, namespace: namespace}
	tracker := cs.Tracker()
	react := k8stesting.ObjectReaction(tracker)
	deliverLateDeletes(cs)
	AllowAccessReviews(cs)
	defer cs.PrependReactor("*", "*", c.reactTests)
	// The API server bumps metadata.generation when the spec changes; the
	// fake tracker does not.
	cs.PrependReactor("*", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			// Only the status changes, as in the API server.
			in := a.(k8stesting.UpdateAction).GetObject().(*appsv1.StatefulSet)
			cur, err := tracker.Get(StatefulSetGVR, a.GetNamespace(), in.Name)
			if err != nil {
				return true, nil, err
			}
			out := cur.(*appsv1.StatefulSet).DeepCopy()
			out.Status = in.Status
			return true, out, tracker.Update(StatefulSetGVR, out, a.GetNamespace())
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
		oldObj, err := tracker.Get(StatefulSetGVR, a.GetNamespace(), name)
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
		if err := tracker.Update(StatefulSetGVR, sts, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, sts, nil
	})
	return c
}

// React adds a test's reactor in front of every other, like the
// clientset's PrependReactor. Unlike PrependReactor it may be called while
// the controller runs: the clientset's reactor chain is not safe to change
// while another goroutine calls the clientset.
func (c *Controller) React(verb, resource string, fn k8stesting.ReactionFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &k8stesting.SimpleReactor{Verb: verb, Resource: resource, Reaction: fn}
	c.reactors = append([]k8stesting.Reactor{r}, c.reactors...)
}

func (c *Controller) reactTests(a k8stesting.Action) (bool, runtime.Object, error) {
	c.mu.Lock()
	reactors := c.reactors
	c.mu.Unlock()
	for _, r := range reactors {
		if !r.Handles(a) {
			continue
		}
		if handled, obj, err := r.React(a.DeepCopy()); handled {
			return handled, obj, err
		}
	}
	return false, nil, nil
}

// Start reconciles the StatefulSet name every few milliseconds until ctx
// ends.
func (c *Controller) Start(ctx context.Context, name string) {
	go func() {
		for ctx.Err() == nil {
			c.Reconcile(ctx, name)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
}

// SetPaused stops and restarts the controller's work. A sync that reads
// the StatefulSet after SetPaused(true) changes nothing; one that read it
// before may still finish its one step. To hold the pods as a spec change
// finds them, pause in a reactor on that change.
func (c *Controller) SetPaused(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = p
}

// PodChanges returns "pod:revision" for every pod the controller created.
func (c *Controller) PodChanges() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.changes...)
}

// RevisionData is the data of the ControllerRevision of template t, as
// the real controller writes it.
func RevisionData(t corev1.PodTemplateSpec) []byte {
	raw, _ := json.Marshal(t)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["$patch"] = "replace"
	out, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
	return out
}

// RevisionName is the name of the ControllerRevision of sts's template.
func RevisionName(sts *appsv1.StatefulSet) string {
	raw, _ := json.Marshal(sts.Spec.Template)
	sum := sha256.Sum256(raw)
	return sts.Name + "-" + hex.EncodeToString(sum[:])[:8]
}

// ensureRevision finds or creates the ControllerRevision of the current
// template and makes it the newest, as the real controller does. A
// StatefulSet whose status already names its update revision before any
// ControllerRevision exists (a fixture) keeps that name for its template.
func (c *Controller) ensureRevision(ctx context.Context, sts *appsv1.StatefulSet) (string, error) {
	api := c.cs.AppsV1().ControllerRevisions(sts.Namespace)
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	data := RevisionData(sts.Spec.Template)
	var maxRev int64
	var found *appsv1.ControllerRevision
	for i := range list.Items {
		cr := &list.Items[i]
		if !strings.HasPrefix(cr.Name, sts.Name+"-") {
			continue
		}
		if cr.Revision > maxRev {
			maxRev = cr.Revision
		}
		if bytes.Equal(cr.Data.Raw, data) {
			found = cr
		}
	}
	switch {
	case found == nil:
		name := RevisionName(sts)
		if maxRev == 0 && sts.Status.UpdateRevision != "" {
			name = sts.Status.UpdateRevision
		}
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sts.Namespace, Labels: sts.Spec.Selector.MatchLabels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: maxRev + 1,
		}
		if _, err := api.Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		return name, nil
	case found.Revision < maxRev:
		found.Revision = maxRev + 1
		if _, err := api.Update(ctx, found, metav1.UpdateOptions{}); err != nil {
			return "", err
		}
	}
	return found.Name, nil
}

func (c *Controller) templateOf(ctx context.Context, ns, rev string) (corev1.PodTemplateSpec, error) {
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

// Reconcile takes one step towards the StatefulSet name's spec, as the
// real controller does on a sync, and updates its status.
func (c *Controller) Reconcile(ctx context.Context, name string) {
	sts, err := c.cs.AppsV1().StatefulSets(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil || sts.DeletionTimestamp != nil {
		return
	}
	// Checked after the read: a sync never acts on a spec written after
	// the controller was paused.
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
	replicas, start, partition := replicasOf(sts), ordinalsStart(sts), partitionOf(sts)
	list, err := c.cs.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	pods := map[int32]*corev1.Pod{}
	var above []*corev1.Pod // pods at or above the replica count, highest first
	for i := range list.Items {
		p := &list.Items[i]
		n, ok := wait.PodOrdinal(name, p.Name)
		if !ok || int32(n) < start {
			continue
		}
		if idx := int32(n) - start; idx < replicas {
			pods[idx] = p
		} else {
			above = append(above, p)
		}
	}
	acted := false
	// Adopt orphans, as the real controller does: only pods nobody
	// controls, and only after reading the StatefulSet afresh, so that a
	// sync that began before the StatefulSet was deleted and recreated
	// does not claim the pods for the deleted one.
	for _, p := range pods {
		if metav1.GetControllerOf(p) != nil {
			continue
		}
		acted = true
		fresh, err := c.cs.AppsV1().StatefulSets(c.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || fresh.UID != sts.UID || fresh.DeletionTimestamp != nil {
			return
		}
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}
		_, _ = c.cs.CoreV1().Pods(c.namespace).Update(ctx, p, metav1.UpdateOptions{})
	}
	// Create or wait, in ordinal order (OrderedReady).
	for idx := int32(0); idx < replicas && !acted; idx++ {
		p := pods[idx]
		if p == nil {
			rev := update
			if sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType && idx < partition {
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
	// Scale down: the highest ordinal first.
	if !acted && len(above) > 0 {
		p := above[0]
		for _, q := range above[1:] {
			if a, _ := wait.PodOrdinal(name, q.Name); a > mustOrdinal(name, p.Name) {
				p = q
			}
		}
		if p.DeletionTimestamp == nil {
			time.Sleep(c.ScaleDownDelay)
			if err := c.cs.CoreV1().Pods(c.namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err == nil && c.OnPodRemoved != nil {
				c.OnPodRemoved(p.Name)
			}
		}
		acted = true
	}
	if !acted && sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		for idx := replicas - 1; idx >= partition && idx >= 0; idx-- {
			p := pods[idx]
			if p != nil && p.Labels[appsv1.StatefulSetRevisionLabel] != update {
				_ = c.cs.CoreV1().Pods(c.namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
				break
			}
		}
	}
	c.updateStatus(ctx, sts, current, update)
}

func (c *Controller) updateStatus(ctx context.Context, sts *appsv1.StatefulSet, current, update string) {
	list, err := c.cs.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	var count, ready, updated int32
	for i := range list.Items {
		p := &list.Items[i]
		if _, ok := wait.PodOrdinal(sts.Name, p.Name); !ok {
			continue
		}
		count++
		if podReady(p) {
			ready++
		}
		if p.Labels[appsv1.StatefulSetRevisionLabel] == update {
			updated++
		}
	}
	replicas := replicasOf(sts)
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: sts.Generation, Replicas: count, ReadyReplicas: ready, AvailableReplicas: ready,
		UpdatedReplicas: updated, CurrentRevision: current, UpdateRevision: update,
	}
	if updated == replicas && ready == replicas {
		st.CurrentRevision = update
	}
	if st.CurrentRevision == update {
		st.CurrentReplicas = updated
	}
	if !equality.Semantic.DeepEqual(st, sts.Status) {
		sts.Status = st
		_, _ = c.cs.AppsV1().StatefulSets(c.namespace).UpdateStatus(ctx, sts, metav1.UpdateOptions{})
	}
}

func (c *Controller) createPod(ctx context.Context, sts *appsv1.StatefulSet, ordinal int32, rev string) {
	t, err := c.templateOf(ctx, sts.Namespace, rev)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.seq++
	uid := types.UID(fmt.Sprintf("uid-%d", c.seq))
	c.mu.Unlock()
	labels := map[string]string{appsv1.StatefulSetRevisionLabel: rev, appsv1.StatefulSetPodNameLabel: wait.PodName(sts.Name, int(ordinal))}
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
		ObjectMeta: metav1.ObjectMeta{Name: wait.PodName(sts.Name, int(ordinal)), Namespace: sts.Namespace, UID: uid, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}},
		Spec: t.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()},
		}},
	}
	for _, ct := range t.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: ct.Name, Ready: ready == corev1.ConditionTrue,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	if _, err := c.cs.CoreV1().Pods(sts.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err == nil {
		c.mu.Lock()
		c.changes = append(c.changes, pod.Name+":"+rev)
		c.mu.Unlock()
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

func mustOrdinal(sts, pod string) int {
	n, _ := wait.PodOrdinal(sts, pod)
	return n
}

func replicasOf(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

func ordinalsStart(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Ordinals == nil {
		return 0
	}
	return sts.Spec.Ordinals.Start
}

func partitionOf(sts *appsv1.StatefulSet) int32 {
	if r := sts.Spec.UpdateStrategy.RollingUpdate; r != nil && r.Partition != nil {
		return *r.Partition
	}
	return 0
}
