package testbed

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
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
// Unlike a real kubelet, KWOK reports a failing command as an internal
// error ending in "exit status N" rather than with the exec protocol's
// exit code: run commands through Cluster.Executor, which reads it back.
// Stdin EOF is not forwarded: pass input as arguments.
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

// Executor returns the plugin's pod executor for this cluster's admin
// connection, adapted to KWOK; see NewExecutor.
func (c *Cluster) Executor() kube.Executor {
	return NewExecutor(c.RESTConfig, c.Client)
}

// NewExecutor returns the plugin's own pod executor (pods/exec through the
// API server) over cfg, reporting a mapped command's exit the way a
// kubelet does: as ExitCode with no error. KWOK's streaming server sends
// it as an internal error instead, which only this test bed knows.
func NewExecutor(cfg *rest.Config, client kubernetes.Interface) kube.Executor {
	return kwokExecutor{inner: kube.NewPodExecutor(cfg, client)}
}

type kwokExecutor struct{ inner kube.Executor }

// kwokExit is how KWOK's local exec words a command that exited non-zero:
// "cmd wait: <command> <args>: exit status N".
var kwokExit = regexp.MustCompile(`(?s)cmd wait: .*: exit status (\d+)\s*$`)

func (e kwokExecutor) Exec(ctx context.Context, req kube.ExecRequest) (kube.ExecResult, error) {
	res, err := e.inner.Exec(ctx, req)
	if err == nil {
		return res, nil
	}
	if code, ok := kwokExitCode(err); ok {
		res.ExitCode = code
		return res, nil
	}
	return res, err
}

func kwokExitCode(err error) (int, bool) {
	m := kwokExit.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	n, convErr := strconv.Atoi(m[1])
	return n, convErr == nil && n != 0
}
