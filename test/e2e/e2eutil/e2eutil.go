// Package e2eutil holds the helpers the end-to-end tests share: clients
// for a namespace of the test bed, in-process runs of `kubectl sts`, a
// polling wait, a plain StatefulSet to run the commands against and a
// build of the plugin for the tests that need a real process.
package e2eutil

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// Client returns a client for namespace ns over the test bed's own
// (administrator) connection.
func Client(c *testbed.Cluster, ns string) *kube.Client {
	return &kube.Client{Kube: c.Client, Config: c.RESTConfig, Namespace: ns, Dynamic: c.Dynamic, Exec: c.Executor()}
}

// ClientFor returns a client for namespace ns, given explicitly as -n
// would, over a connection of its own made from cfg, built as the command
// builds it (retries included).
func ClientFor(t testing.TB, ns string, cfg *rest.Config) *kube.Client {
	t.Helper()
	c, err := kube.NewClientForConfig(cfg, ns, true, nil, kube.DefaultRetry())
	require.NoError(t, err)
	c.Exec = testbed.NewExecutor(c.Config, c.Kube)
	return c
}

// Fake returns in-process command options over client, with the real
// clock (the cluster's timestamps are real).
func Fake(client *kube.Client) *cmdtesting.Fake {
	f := cmdtesting.NewFakeOptionsWithClient(client, nil)
	f.Options.Now = time.Now
	return f
}

// Result is what a run of a command gave: its exit code and output.
type Result struct {
	Code        int
	Out, ErrOut string
}

// RunContext executes `kubectl sts args...` in-process over client, with
// ctx.
func RunContext(ctx context.Context, client *kube.Client, args ...string) Result {
	f := Fake(client)
	code := f.Run(ctx, cmd.Run, args...)
	return Result{Code: code, Out: f.Out.String(), ErrOut: f.ErrOut.String()}
}

// Run executes `kubectl sts args...` in-process over client, bounded by
// timeout, and logs the exit code and output.
func Run(t testing.TB, client *kube.Client, timeout time.Duration, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := RunContext(ctx, client, args...)
	t.Logf("kubectl sts %s → exit %d\n%s%s", strings.Join(args, " "), res.Code, res.Out, res.ErrOut)
	return res
}

// Poll waits for conditions, each for at most Timeout.
type Poll struct {
	Timeout time.Duration
	// Describe, when set, is added to the message of a timeout.
	Describe func() string
}

// Until checks cond every 100ms until it holds. An error of cond fails
// the test at once; so does cond not holding after p.Timeout.
func (p Poll) Until(t testing.TB, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	for {
		ok, err := cond(ctx)
		require.NoError(t, err, what)
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			if p.Describe != nil {
				t.Fatalf("timed out after %s waiting for %s\n%s", p.Timeout, what, p.Describe())
			}
			t.Fatalf("timed out after %s waiting for %s", p.Timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NewStatefulSet returns a StatefulSet whose pods, labelled app=name, run
// one container "app" of image, with a claim template of 1Gi
// (ReadWriteOnce, the default class) for each of claims, mounted at
// /<claim>.
func NewStatefulSet(ns, name string, replicas int32, image string, claims ...string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	container := corev1.Container{Name: "app", Image: image}
	var templates []corev1.PersistentVolumeClaim
	for _, c := range claims {
		container.VolumeMounts = append(container.VolumeMounts, corev1.VolumeMount{Name: c, MountPath: "/" + c})
		templates = append(templates, corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: c},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		})
	}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{container}},
			},
			VolumeClaimTemplates: templates,
		},
	}
}

// StatefulSet reads the StatefulSet ns/name through the test bed's own
// connection.
func StatefulSet(t testing.TB, c *testbed.Cluster, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	s, err := c.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return s
}

// BuildPlugin compiles the plugin into a directory of the test, for the
// tests that need a real process, and returns the binary's path. flags go
// to go build (e.g. the release's -trimpath and -ldflags).
func BuildPlugin(t testing.TB, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-sts")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	c := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, "./cmd/kubectl-sts")...)
	c.Dir = root
	out, err := c.CombinedOutput()
	require.NoError(t, err, "building the plugin: %s", out)
	return bin
}

// RequireLeaseLive fails the test unless a lease renewed at heartbeat
// still has a good margin before it expires: a test about a run refused by
// a live lease must not let the lease run out before that run reads it.
func RequireLeaseLive(t testing.TB, heartbeat time.Time, lease time.Duration) {
	t.Helper()
	const margin = 10 * time.Second
	age := time.Since(heartbeat)
	require.Less(t, age, lease-margin, "the lease (%s) was renewed %s ago: too close to expiry to test a refusal", lease, age.Round(time.Millisecond))
}

// FieldsOf returns the fields manager owns in obj's managedFields, as the
// API server's JSON (e.g. {"f:spec":{"f:replicas":{}}}), one entry per
// line; empty when manager owns nothing.
func FieldsOf(obj metav1.Object, manager string) string {
	var out []string
	for _, e := range obj.GetManagedFields() {
		if e.Manager == manager && e.FieldsV1 != nil {
			out = append(out, e.FieldsV1.GetRawString())
		}
	}
	return strings.Join(out, "\n")
}

// JournalConfigMap reads the operation record of StatefulSet name.
func JournalConfigMap(t testing.TB, c *testbed.Cluster, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), journal.ConfigMapName(name), metav1.GetOptions{})
	require.NoError(t, err)
	return cm
}

// JSONLines is an output stream that keeps what is written and calls
// OnEvent for every progress event printed with -o json, from the
// workflow's own goroutine: the workflow waits while OnEvent runs.
type JSONLines struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	line    []byte
	OnEvent func(progress.Event)
}

// Write implements io.Writer.
func (w *JSONLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, b := range p {
		if b != '\n' {
			w.line = append(w.line, b)
			continue
		}
		var ev progress.Event
		if w.OnEvent != nil && json.Unmarshal(w.line, &ev) == nil && ev.Kind != "" {
			w.OnEvent(ev)
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

// String returns everything written.
func (w *JSONLines) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// RunWatching executes `kubectl sts args...` in-process over client like
// Run, with args asking for -o json, and calls onEvent for each progress
// event as the workflow emits it.
func RunWatching(t testing.TB, client *kube.Client, timeout time.Duration, onEvent func(progress.Event), args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f := Fake(client)
	out := &JSONLines{OnEvent: onEvent}
	f.Options.Out = out
	code := f.Run(ctx, cmd.Run, args...)
	res := Result{Code: code, Out: out.String(), ErrOut: f.ErrOut.String()}
	t.Logf("kubectl sts %s → exit %d\n%s%s", strings.Join(args, " "), res.Code, res.Out, res.ErrOut)
	return res
}
