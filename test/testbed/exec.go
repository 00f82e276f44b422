package testbed

import (
	"context"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ExecMapping maps `kubectl exec` on fake pods to commands run on this
// machine: the command given to kubectl exec runs locally, with Env added to
// the test process's environment and in WorkDir.
//
// Namespace and Pod select the pods: both set, one pod; Pod empty, every pod
// in Namespace; Namespace empty, pods of that name in every namespace (or
// every pod, if Pod is empty too). A later mapping for the same selection
// replaces the earlier one.
//
// Unlike a real kubelet, a failing command surfaces as an error with
// "exit status N" in its message, and stdin EOF is not forwarded: pass
// input as arguments.
type ExecMapping struct {
	Namespace string
	Pod       string
	// Containers limits the mapping to these containers; empty means all.
	Containers []string
	Env        map[string]string
	WorkDir    string
}

// MapExec applies a KWOK Exec (one pod) or ClusterExec (a selection of pods)
// for m.
func (c *Cluster) MapExec(ctx context.Context, m ExecMapping) error {
	var envs []any
	keys := make([]string, 0, len(m.Env))
	for k := range m.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		envs = append(envs, map[string]any{"name": k, "value": m.Env[k]})
	}
	local := map[string]any{}
	if m.WorkDir != "" {
		local["workDir"] = m.WorkDir
	}
	if len(envs) > 0 {
		local["envs"] = envs
	}
	target := map[string]any{"local": local}
	if len(m.Containers) > 0 {
		cs := make([]any, len(m.Containers))
		for i, ctr := range m.Containers {
			cs[i] = ctr
		}
		target["containers"] = cs
	}
	spec := map[string]any{"execs": []any{target}}

	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"spec":       spec,
	}}
	gvr := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterexecs"}
	if m.Namespace != "" && m.Pod != "" {
		gvr.Resource = "execs"
		obj.SetKind("Exec")
		obj.SetNamespace(m.Namespace)
		obj.SetName(m.Pod)
	} else {
		obj.SetKind("ClusterExec")
		selector := map[string]any{}
		name := "testbed"
		if m.Namespace != "" {
			selector["matchNamespaces"] = []any{m.Namespace}
			name += "-ns-" + m.Namespace
		}
		if m.Pod != "" {
			selector["matchNames"] = []any{m.Pod}
			name += "-pod-" + m.Pod
		}
		if len(selector) > 0 {
			spec["selector"] = selector
		}
		if len(name) > 253 {
			name = name[:253]
		}
		obj.SetName(name)
	}

	// The CRDs are installed with the cluster but may not be served yet
	// right after Start.
	var applyErr error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		ri := c.Dynamic.Resource(gvr)
		var err error
		if obj.GetNamespace() != "" {
			_, err = ri.Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "testbed", Force: true})
		} else {
			_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "testbed", Force: true})
		}
		applyErr = err
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		if applyErr != nil {
			err = applyErr
		}
		return fmt.Errorf("testbed: applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}
