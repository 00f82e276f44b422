package kube

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: team
  context: {cluster: c, user: u, namespace: team-ns}
- name: bare
  context: {cluster: c, user: u}
current-context: team
`

func configFlags(t *testing.T) *genericclioptions.ConfigFlags {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(path, []byte(kubeconfig), 0o600))
	f := genericclioptions.NewConfigFlags(false)
	f.KubeConfig = ptr.To(path)
	return f
}

func TestNewClientResolvesTheNamespace(t *testing.T) {
	for _, tc := range []struct {
		name         string
		context, ns  string
		want         string
		wantExplicit bool
	}{
		{name: "from the context", want: "team-ns"},
		{name: "-n wins", ns: "other", want: "other", wantExplicit: true},
		{name: "context without one", context: "bare", want: "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := configFlags(t)
			if tc.context != "" {
				f.Context = ptr.To(tc.context)
			}
			if tc.ns != "" {
				f.Namespace = ptr.To(tc.ns)
			}
			c, err := NewClient(f, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Namespace)
			assert.Equal(t, tc.wantExplicit, c.NamespaceExplicit)
			assert.Equal(t, "https://127.0.0.1:6443", c.Config.Host)
			assert.NotNil(t, c.Kube)
			assert.NotNil(t, c.Dynamic, "the VolumeSnapshot API is reached through it")
			assert.IsType(t, &PodExecutor{}, c.Exec)
		})
	}
}

func TestNewClientSendsWarningsToTheGivenWriter(t *testing.T) {
	var warnings bytes.Buffer
	c, err := NewClient(configFlags(t), &warnings)
	require.NoError(t, err)
	require.NotNil(t, c.Config.WarningHandler)
	c.Config.WarningHandler.HandleWarningHeader(299, "-", "deprecated API")
	c.Config.WarningHandler.HandleWarningHeader(299, "-", "deprecated API")
	assert.Equal(t, "Warning: deprecated API\n", warnings.String(), "deduplicated, on the error stream")
}

func TestNewClientExplainsABadKubeconfig(t *testing.T) {
	f := genericclioptions.NewConfigFlags(false)
	f.KubeConfig = ptr.To(filepath.Join(t.TempDir(), "missing"))
	_, err := NewClient(f, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "check --kubeconfig and --context")

	f = configFlags(t)
	f.Context = ptr.To("nope")
	_, err = NewClient(f, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "check --kubeconfig and --context")
}

func TestAPIEventRecorderWritesAnEventOnTheObject(t *testing.T) {
	cs := fake.NewClientset()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := APIEventRecorder{Client: cs, Now: func() time.Time { return at }}
	ref := StatefulSetRef("db-ns", "db", "uid-1")

	require.NoError(t, rec.Event(context.Background(), ref, corev1.EventTypeNormal, "Scaled", "removed db-2"))

	list, err := cs.CoreV1().Events("db-ns").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	ev := list.Items[0]
	assert.Equal(t, "db.", ev.GenerateName)
	assert.Equal(t, corev1.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: "db-ns", Name: "db", UID: "uid-1"}, ev.InvolvedObject)
	assert.Equal(t, "Scaled", ev.Reason)
	assert.Equal(t, "removed db-2", ev.Message)
	assert.Equal(t, corev1.EventTypeNormal, ev.Type)
	assert.Equal(t, EventSource, ev.Source.Component)
	assert.Equal(t, EventSource, ev.ReportingController)
	assert.True(t, ev.FirstTimestamp.Time.Equal(at))
	assert.True(t, ev.LastTimestamp.Time.Equal(at))
	assert.Equal(t, int32(1), ev.Count)
}

func TestAPIEventRecorderNamesTheEventItCouldNotWrite(t *testing.T) {
	cs := fake.NewClientset()
	down := errors.New("etcdserver: request timed out")
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, down
	})
	err := APIEventRecorder{Client: cs}.Event(context.Background(), StatefulSetRef("db-ns", "db", ""), corev1.EventTypeWarning, "Failed", "m")
	require.ErrorIs(t, err, down)
	assert.Contains(t, err.Error(), "recording event Failed on StatefulSet/db")
}

// A staged rollout sends three requests a step, two of them through the
// core group (its journal write and its Event), and at a few steps a second
// client-go's default limit of 5 requests a second per API group would
// hold every step back. The client's own limit leaves the pacing to the
// API server's priority and fairness; a limit the caller set stays.
func TestNewClientForConfigRateLimit(t *testing.T) {
	c, err := NewClientForConfig(&rest.Config{Host: "https://127.0.0.1:6443"}, "ns", false, nil, DefaultRetry())
	require.NoError(t, err)
	cs, ok := c.Kube.(*kubernetes.Clientset)
	require.True(t, ok)
	for name, rc := range map[string]rest.Interface{"core": cs.CoreV1().RESTClient(), "apps": cs.AppsV1().RESTClient()} {
		rl := rc.GetRateLimiter()
		require.NotNil(t, rl, name)
		assert.Equal(t, float32(DefaultQPS), rl.QPS(), "requests a second of the %s group", name)
	}
	assert.Equal(t, float32(DefaultQPS), c.Config.QPS)
	assert.Equal(t, DefaultBurst, c.Config.Burst)

	c, err = NewClientForConfig(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 7, Burst: 9}, "ns", false, nil, DefaultRetry())
	require.NoError(t, err)
	assert.Equal(t, float32(7), c.Config.QPS)
	assert.Equal(t, 9, c.Config.Burst)
}
