package wait

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
)

// Objects are a StatefulSet, its pods and its claims as read at one time:
// what the one-shot readers (Read, ReadFor, ReadAll) return and what a
// Tracker keeps up to date.
type Objects struct {
	StatefulSet *appsv1.StatefulSet
	// Pods are the StatefulSet's pods (see OwnsPod), sorted by ordinal.
	Pods []*corev1.Pod
	// PVCs are the StatefulSet's claims (see OwnsClaim), sorted by
	// ordinal, then in template order.
	PVCs []*corev1.PersistentVolumeClaim
}

// Selector returns the StatefulSet's label selector. A StatefulSet without
// one, or with one that is invalid or selects everything, is refused: it
// cannot be told from its neighbours.
func Selector(sts *appsv1.StatefulSet) (labels.Selector, error) {
	if sts.Spec.Selector == nil {
		return nil, fmt.Errorf("statefulset %s/%s has no selector", sts.Namespace, sts.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s has an invalid selector: %w", sts.Namespace, sts.Name, err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("statefulset %s/%s has an empty selector", sts.Namespace, sts.Name)
	}
	return sel, nil
}

// OwnsPod reports whether pod is a pod of sts, and its ordinal: in sts's
// namespace, named "<sts>-<ordinal>", matching sts's selector, and not
// controlled by another object. A pod with no controller (orphaned while
// a StatefulSet is recreated) counts.
func OwnsPod(sts *appsv1.StatefulSet, pod *corev1.Pod) (int, bool) {
	sel, err := Selector(sts)
	if err != nil {
		return 0, false
	}
	return ownsPod(sts, sel, pod)
}

// ownsPod is OwnsPod with sts's selector already parsed.
func ownsPod(sts *appsv1.StatefulSet, sel labels.Selector, pod *corev1.Pod) (int, bool) {
	if pod == nil || pod.Namespace != sts.Namespace {
		return 0, false
	}
	n, ok := PodOrdinal(sts.Name, pod.Name)
	if !ok || !sel.Matches(labels.Set(pod.Labels)) {
		return 0, false
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && sts.UID != "" && ref.UID != sts.UID {
		return 0, false
	}
	return n, true
}

// OwnsClaim reports whether pvc is a claim of sts, and the template and
// ordinal it belongs to. This is the one rule for claims, and it is the
// StatefulSet controller's own: the controller finds the claim of an
// ordinal by its name alone, "<template>-<sts>-<ordinal>" in sts's
// namespace, and mounts whatever claim has that name. So labels are not
// consulted: claims created before the controller copied the selector's
// labels onto them, claims made by hand ahead of a pod (a restored
// volume), claims of a StatefulSet whose selector has only
// matchExpressions, and claims whose labels were edited all belong to the
// StatefulSet all the same. A claim whose controller is another
// StatefulSet (another name, or the same name with another UID) does not.
func OwnsClaim(sts *appsv1.StatefulSet, pvc *corev1.PersistentVolumeClaim) (template string, ordinal int, ok bool) {
	if pvc == nil || pvc.Namespace != sts.Namespace {
		return "", 0, false
	}
	if ref := metav1.GetControllerOf(pvc); ref != nil && ref.Kind == "StatefulSet" && (ref.Name != sts.Name || (sts.UID != "" && ref.UID != sts.UID)) {
		return "", 0, false
	}
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if n, ok := PodOrdinal(t.Name+"-"+sts.Name, pvc.Name); ok {
			return t.Name, n, true
		}
	}
	return "", 0, false
}

// Read reads the StatefulSet namespace/name, its pods and its claims with
// three requests whatever the replica count: GET the StatefulSet, LIST its
// pods by its selector, LIST the namespace's claims (claims are found by
// name, see OwnsClaim, which no server-side selector expresses).
func Read(ctx context.Context, c kubernetes.Interface, namespace, name string) (*Objects, error) {
	sts, err := c.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return ReadFor(ctx, c, sts)
}

// ReadFor reads the pods and claims of sts, already read, with two
// requests (see Read).
func ReadFor(ctx context.Context, c kubernetes.Interface, sts *appsv1.StatefulSet) (*Objects, error) {
	pods, err := ListPods(ctx, c, sts)
	if err != nil {
		return nil, err
	}
	pvcs, err := ListClaims(ctx, c, sts)
	if err != nil {
		return nil, err
	}
	return &Objects{StatefulSet: sts, Pods: pods, PVCs: pvcs}, nil
}

// ListPods lists the pods of sts with one request selected by its label
// selector, sorted by ordinal.
func ListPods(ctx context.Context, c kubernetes.Interface, sts *appsv1.StatefulSet) ([]*corev1.Pod, error) {
	sel, err := Selector(sts)
	if err != nil {
		return nil, err
	}
	list, err := c.CoreV1().Pods(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of statefulset %s/%s: %w", sts.Namespace, sts.Name, err)
	}
	return FilterPods(sts, pointers(list.Items)), nil
}

// ListClaims lists the claims of sts (see OwnsClaim) with one request,
// sorted by ordinal, then in template order.
func ListClaims(ctx context.Context, c kubernetes.Interface, sts *appsv1.StatefulSet) ([]*corev1.PersistentVolumeClaim, error) {
	list, err := c.CoreV1().PersistentVolumeClaims(sts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the persistentvolumeclaims of namespace %s: %w", sts.Namespace, err)
	}
	return FilterClaims(sts, pointers(list.Items)), nil
}

// ReadAll reads every StatefulSet in namespace ("" means all namespaces)
// whose labels match selector (kubectl's -l syntax, empty for all), with
// their pods and claims, in three LIST requests: the StatefulSets, the
// pods a StatefulSet controller made (by the statefulset.kubernetes.io/pod-name
// label it sets), the claims. The result is sorted by namespace and name.
func ReadAll(ctx context.Context, c kubernetes.Interface, namespace, selector string) ([]*Objects, error) {
	sets, err := c.AppsV1().StatefulSets(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	if len(sets.Items) == 0 {
		return nil, nil
	}
	req, err := labels.NewRequirement(appsv1.StatefulSetPodNameLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
	if err != nil {
		return nil, err
	}
	pvcs, err := c.CoreV1().PersistentVolumeClaims(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	podsByNS := map[string][]*corev1.Pod{}
	for _, p := range pointers(pods.Items) {
		podsByNS[p.Namespace] = append(podsByNS[p.Namespace], p)
	}
	pvcsByNS := map[string][]*corev1.PersistentVolumeClaim{}
	for _, c := range pointers(pvcs.Items) {
		pvcsByNS[c.Namespace] = append(pvcsByNS[c.Namespace], c)
	}
	out := make([]*Objects, 0, len(sets.Items))
	for i := range sets.Items {
		sts := &sets.Items[i]
		out = append(out, &Objects{
			StatefulSet: sts,
			Pods:        FilterPods(sts, podsByNS[sts.Namespace]),
			PVCs:        FilterClaims(sts, pvcsByNS[sts.Namespace]),
		})
	}
	sort.Slice(out, func(i, k int) bool {
		a, b := out[i].StatefulSet, out[k].StatefulSet
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

// FilterPods returns the pods of sts among pods (see OwnsPod), sorted by
// ordinal.
func FilterPods(sts *appsv1.StatefulSet, pods []*corev1.Pod) []*corev1.Pod {
	type owned struct {
		pod     *corev1.Pod
		ordinal int
	}
	sel, err := Selector(sts)
	if err != nil {
		return nil
	}
	var keep []owned
	for _, p := range pods {
		if n, ok := ownsPod(sts, sel, p); ok {
			keep = append(keep, owned{p, n})
		}
	}
	sort.SliceStable(keep, func(i, k int) bool { return keep[i].ordinal < keep[k].ordinal })
	out := make([]*corev1.Pod, len(keep))
	for i, o := range keep {
		out[i] = o.pod
	}
	return out
}

// FilterClaims returns the claims of sts among pvcs (see OwnsClaim),
// sorted by ordinal, then in template order.
func FilterClaims(sts *appsv1.StatefulSet, pvcs []*corev1.PersistentVolumeClaim) []*corev1.PersistentVolumeClaim {
	order := map[string]int{}
	for i, t := range sts.Spec.VolumeClaimTemplates {
		order[t.Name] = i
	}
	type owned struct {
		pvc      *corev1.PersistentVolumeClaim
		template string
		ordinal  int
	}
	var keep []owned
	for _, c := range pvcs {
		if t, n, ok := OwnsClaim(sts, c); ok {
			keep = append(keep, owned{c, t, n})
		}
	}
	sort.SliceStable(keep, func(i, k int) bool {
		if keep[i].ordinal != keep[k].ordinal {
			return keep[i].ordinal < keep[k].ordinal
		}
		return order[keep[i].template] < order[keep[k].template]
	})
	out := make([]*corev1.PersistentVolumeClaim, len(keep))
	for i, o := range keep {
		out[i] = o.pvc
	}
	return out
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
