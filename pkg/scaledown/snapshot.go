package scaledown

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// The VolumeSnapshot API of the external snapshotter (a CRD, not built in).
const (
	SnapshotGroup   = "snapshot.storage.k8s.io"
	SnapshotVersion = "v1"
)

func snapshotGV() schema.GroupVersion {
	return schema.GroupVersion{Group: SnapshotGroup, Version: SnapshotVersion}
}

// SnapshotResource is the resource of VolumeSnapshots.
func SnapshotResource() schema.GroupVersionResource {
	return snapshotGV().WithResource("volumesnapshots")
}

// SnapshotClassResource is the resource of VolumeSnapshotClasses.
func SnapshotClassResource() schema.GroupVersionResource {
	return snapshotGV().WithResource("volumesnapshotclasses")
}

// annotationDefaultSnapshotClass marks the default VolumeSnapshotClass.
const annotationDefaultSnapshotClass = "snapshot.storage.kubernetes.io/is-default-class"

// SnapshotAPIMissingError refuses --pvc snapshot on a cluster without the
// VolumeSnapshot API.
type SnapshotAPIMissingError struct{ Detail string }

func (e *SnapshotAPIMissingError) Error() string {
	msg := "--pvc snapshot needs the VolumeSnapshot API (snapshot.storage.k8s.io/v1), which this cluster does not serve"
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg + ": install the external-snapshotter CRDs and controller and a CSI driver that supports snapshots, or choose --pvc keep or --pvc delete"
}

// checkSnapshotAPI verifies the API is served and resolves the class to
// use: the given one, which must exist, or the cluster's default.
func checkSnapshotAPI(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, class string) (string, error) {
	if disc == nil {
		return "", &SnapshotAPIMissingError{Detail: "no discovery client"}
	}
	list, err := discovery.ToServerResourcesInterfaceWithContext(disc).ServerResourcesForGroupVersionWithContext(ctx, snapshotGV().String())
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", &SnapshotAPIMissingError{}
		}
		return "", fmt.Errorf("checking for the VolumeSnapshot API: %w", err)
	}
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	if !served["volumesnapshots"] {
		return "", &SnapshotAPIMissingError{Detail: "volumesnapshots is not served"}
	}
	if dyn == nil {
		return "", errors.New("--pvc snapshot: no dynamic client configured")
	}
	classes := dyn.Resource(SnapshotClassResource())
	if class != "" {
		if _, err := classes.Get(ctx, class, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return "", &InvalidError{Msg: fmt.Sprintf("VolumeSnapshotClass %q does not exist (list them with: kubectl get volumesnapshotclass)", class)}
			}
			return "", fmt.Errorf("reading VolumeSnapshotClass %s: %w", class, err)
		}
		return class, nil
	}
	all, err := classes.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing VolumeSnapshotClasses: %w", err)
	}
	var defaults []string
	for _, c := range all.Items {
		if c.GetAnnotations()[annotationDefaultSnapshotClass] == "true" {
			defaults = append(defaults, c.GetName())
		}
	}
	switch len(defaults) {
	case 1:
		return defaults[0], nil
	case 0:
		return "", &InvalidError{Msg: "no default VolumeSnapshotClass is set: name one with --snapshot-class (list them with: kubectl get volumesnapshotclass)"}
	default:
		return "", &InvalidError{Msg: fmt.Sprintf("several VolumeSnapshotClasses are marked default (%v): name one with --snapshot-class", defaults)}
	}
}

// SnapshotName is the VolumeSnapshot taken of claim by the operation that
// started at started. It is derived from the operation, so a resumed run
// finds the snapshot an interrupted one created.
func SnapshotName(claim string, started time.Time) string {
	suffix := "-" + started.UTC().Format("20060102-150405")
	max := validation.DNS1123SubdomainMaxLength - len(suffix)
	if len(claim) > max {
		claim = claim[:max]
	}
	return claim + suffix
}

// snapshotter creates VolumeSnapshots and waits for them.
type snapshotter struct {
	dyn       dynamic.Interface
	namespace string
	sts       string
	class     string
}

// ensure creates the snapshot of claim, or returns the existing one when a
// previous run already created it. A same-named snapshot of something else
// is an error, never reused.
func (s snapshotter) ensure(ctx context.Context, name, claim string) (created bool, err error) {
	api := s.dyn.Resource(SnapshotResource()).Namespace(s.namespace)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": snapshotGV().String(),
		"kind":       "VolumeSnapshot",
		"metadata": map[string]any{
			"name":      name,
			"namespace": s.namespace,
			"labels": map[string]any{
				journal.LabelManagedBy:   journal.ManagedBy,
				journal.LabelStatefulSet: s.sts,
			},
		},
		"spec": map[string]any{
			"volumeSnapshotClassName": s.class,
			"source":                  map[string]any{"persistentVolumeClaimName": claim},
		},
	}}
	_, err = api.Create(ctx, obj, metav1.CreateOptions{})
	if err == nil {
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("creating volumesnapshot %s of pvc %s: %w", name, claim, err)
	}
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading volumesnapshot %s: %w", name, err)
	}
	src, _, _ := unstructured.NestedString(cur.Object, "spec", "source", "persistentVolumeClaimName")
	if src != claim || cur.GetLabels()[journal.LabelManagedBy] != journal.ManagedBy {
		return false, fmt.Errorf("a volumesnapshot %s already exists and is not a snapshot of pvc %s taken by kubectl-sts; delete or rename it, then re-run", name, claim)
	}
	return false, nil
}

// waitReady waits, through the wait layer's watch of the one snapshot,
// until it reports readyToUse, and fails at once on a snapshot error.
func (s snapshotter) waitReady(ctx context.Context, name string, timeout time.Duration) error {
	api := s.dyn.Resource(SnapshotResource()).Namespace(s.namespace)
	seen := false
	ready := wait.ObjectCondition("volumesnapshot "+name, "to be readyToUse", func(obj runtime.Object) (wait.Verdict, string, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || u == nil {
			if seen {
				return wait.Fail, "", fmt.Errorf("volumesnapshot %s was deleted while waiting for it to be ready", name)
			}
			return wait.NotYet, "not created yet", nil
		}
		seen = true
		if ok, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse"); ok {
			return wait.Pass, "readyToUse", nil
		}
		if msg, found, _ := unstructured.NestedString(u.Object, "status", "error", "message"); found && msg != "" {
			return wait.Fail, msg, &SnapshotFailedError{Name: name, Message: msg}
		}
		if _, found, _ := unstructured.NestedMap(u.Object, "status"); !found {
			return wait.NotYet, "no status yet (is the snapshot controller running?)", nil
		}
		return wait.NotYet, "readyToUse is false", nil
	})
	err := wait.Waiter{Timeout: timeout}.WaitObject(ctx, wait.ObjectWatch{
		Kind: "volumesnapshot", Namespace: s.namespace, Name: name,
		Type: &unstructured.Unstructured{}, Client: s.dyn,
		ListFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		WatchFunc: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
	}, ready)
	var failed *SnapshotFailedError
	if errors.As(err, &failed) {
		return failed
	}
	return err
}

// SnapshotFailedError is a snapshot the snapshot controller reported as
// failed.
type SnapshotFailedError struct{ Name, Message string }

func (e *SnapshotFailedError) Error() string {
	return fmt.Sprintf("volumesnapshot %s failed: %s", e.Name, e.Message)
}
