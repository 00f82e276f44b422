package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

type seen struct {
	method, path, fieldManager, dryRun, userAgent string
}

// apiServer answers every request with an empty ConfigMap and records what
// each request carried.
func apiServer(t *testing.T) (*httptest.Server, func() []seen) {
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.Query().Get("fieldManager"), r.URL.Query().Get("dryRun"), r.UserAgent()})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }
}

func TestEveryWriteNamesTheFieldManagerAndTheUserAgent(t *testing.T) {
	srv, requests := apiServer(t)
	c, err := (&kube.Client{Config: &rest.Config{Host: srv.URL}, Namespace: "ns"}).Identified(kube.UserAgent("v1.2.3"), kube.FieldManager)
	require.NoError(t, err)
	ctx := context.Background()
	cms := c.Kube.CoreV1().ConfigMaps("ns")
	_, _ = cms.Get(ctx, "a", metav1.GetOptions{})
	_, _ = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	_, _ = cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.UpdateOptions{})
	_, _ = cms.Patch(ctx, "a", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	_, _ = cms.Patch(ctx, "a", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{FieldManager: "mine"})
	_ = c.Kube.CoreV1().Pods("ns").EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}})
	_ = cms.Delete(ctx, "a", metav1.DeleteOptions{})
	_, _ = c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace("ns").Name("p").SubResource("exec").DoRaw(ctx)

	want := map[string]string{
		"GET /api/v1/namespaces/ns/configmaps/a":     "",
		"POST /api/v1/namespaces/ns/configmaps":      "kubectl-sts",
		"PUT /api/v1/namespaces/ns/configmaps/a":     "kubectl-sts",
		"POST /api/v1/namespaces/ns/pods/p/eviction": "kubectl-sts",
		"DELETE /api/v1/namespaces/ns/configmaps/a":  "",
		"POST /api/v1/namespaces/ns/pods/p/exec":     "",
	}
	var patches []string
	for _, r := range requests() {
		assert.Regexp(t, `^kubectl-sts/v1\.2\.3 \([a-z0-9]+/[a-z0-9]+\)$`, r.userAgent)
		key := r.method + " " + r.path
		if r.method == http.MethodPatch {
			patches = append(patches, r.fieldManager)
			continue
		}
		fm, ok := want[key]
		require.True(t, ok, "unexpected request %s", key)
		assert.Equal(t, fm, r.fieldManager, key)
		delete(want, key)
	}
	assert.Empty(t, want, "requests not sent")
	assert.Equal(t, []string{"kubectl-sts", "mine"}, patches, "a field manager named by the call is kept")
}

func TestFakeClientIsLeftAlone(t *testing.T) {
	c := &kube.Client{Namespace: "ns"}
	got, err := c.Identified("x", "y")
	require.NoError(t, err)
	assert.Same(t, c, got)
}

// TestARequestTimeoutCancelsThroughTheFieldManagerTransport: with
// --request-timeout, client-go cancels a request that runs out by asking
// each transport wrapper for the one it wraps; a wrapper that does not say
// makes it log "Warning: unable to cancel request" to standard error.
func TestARequestTimeoutCancelsThroughTheFieldManagerTransport(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	var logged bytes.Buffer
	var mu sync.Mutex
	klog.LogToStderr(false)
	klog.SetOutput(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logged.Write(p) }))
	t.Cleanup(func() { klog.SetOutput(io.Discard); klog.LogToStderr(true) })

	cfg := kube.Identify(&rest.Config{Host: srv.URL, Timeout: 50 * time.Millisecond}, "kubectl-sts/test", kube.FieldManager)
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = c.CoreV1().ConfigMaps("default").Get(context.Background(), "x", metav1.GetOptions{})
	require.Error(t, err, "the request runs out")
	klog.Flush()
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, logged.String(), "unable to cancel request")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
