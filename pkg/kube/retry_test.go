package kube

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fault is one scripted answer of the test server.
type fault func(w http.ResponseWriter)

func status(code int, header ...string) fault {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReason(http.StatusText(code))})
	}
}

// reset drops the connection without an answer.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// server answers configmap requests: scripted faults first, then success.
// It records every request body it received.
type server struct {
	mu     sync.Mutex
	faults []fault
	bodies []string
	calls  int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls++
	s.bodies = append(s.bodies, string(b))
	var f fault
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		f(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	cm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", ResourceVersion: "7"}}
	_ = json.NewEncoder(w).Encode(cm)
}

// count is the number of requests received so far; a request the client
// gave up on may still be in the handler, hence the lock.
func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func newRetryClient(t *testing.T, faults ...fault) (*Client, *server, *[]string) {
	t.Helper()
	s := &server{faults: faults}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	c, reasons := retryClientFor(t, ts.URL, 5*time.Second)
	return c, s, reasons
}

// retryClientFor is the shared client of host, retrying for at most
// maxElapsed, and the reasons of its retries.
func retryClientFor(t *testing.T, host string, maxElapsed time.Duration) (*Client, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var reasons []string
	r := Retry{Base: time.Millisecond, Cap: 20 * time.Millisecond, MaxElapsed: maxElapsed,
		OnRetry: func(_ *http.Request, _ int, reason string, _ time.Duration) {
			mu.Lock()
			reasons = append(reasons, reason)
			mu.Unlock()
		}}
	c, err := NewClientForConfig(&rest.Config{Host: host, QPS: -1}, "ns", true, nil, r)
	require.NoError(t, err)
	return c, &reasons
}

func TestTransientFailuresAreRetriedOnReadsAndWrites(t *testing.T) {
	ctx := context.Background()
	c, s, reasons := newRetryClient(t,
		reset, status(500), status(503), status(504), status(429, "Retry-After", "0"), status(429), status(502))
	_, err := c.Kube.CoreV1().ConfigMaps("ns").Get(ctx, "c", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, 8, s.calls)
	assert.Equal(t, []string{"connection closed (EOF)", "500 Internal Server Error", "503 Service Unavailable", "504 Gateway Timeout",
		"429 Too Many Requests", "429 Too Many Requests", "502 Bad Gateway"}, *reasons)

	// A write is sent again with the same body, resourceVersion included.
	s.faults = []fault{reset, status(503)}
	s.bodies, s.calls = nil, 0
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", ResourceVersion: "6"}, Data: map[string]string{"k": "v"}}
	_, err = c.Kube.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Len(t, s.bodies, 3)
	assert.NotEmpty(t, s.bodies[0])
	assert.Equal(t, s.bodies[0], s.bodies[2], "the same update, resourceVersion included, is sent again")
}

func TestFinalAnswersAreNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 410, 422} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			c, s, _ := newRetryClient(t, status(code))
			_, err := c.Kube.CoreV1().ConfigMaps("ns").Get(context.Background(), "c", metav1.GetOptions{})
			require.Error(t, err)
			var st apierrors.APIStatus
			require.ErrorAs(t, err, &st)
			assert.Equal(t, int32(code), st.Status().Code)
			assert.Equal(t, 1, s.calls, "sent exactly once")
		})
	}
}

// deadline is a request context whose deadline arrives when the test says,
// not on a clock: the tests below pin it to what the server has seen, so
// that a slow machine cannot move it.
type deadline struct {
	context.Context
	at   time.Time
	done chan struct{}
	once sync.Once
}

func newDeadline() *deadline {
	return &deadline{Context: context.Background(), at: time.Now().Add(time.Minute), done: make(chan struct{})}
}

func (d *deadline) Deadline() (time.Time, bool) { return d.at, true }
func (d *deadline) Done() <-chan struct{}       { return d.done }
func (d *deadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
func (d *deadline) expire() { d.once.Do(func() { close(d.done) }) }

// expireThen lets the deadline arrive while the request is at the server,
// then answers with f.
func (d *deadline) expireThen(f fault) fault {
	return func(w http.ResponseWriter) {
		d.expire()
		f(w)
	}
}

// Retries end with the request's context: the operation's timeout bounds
// them, and the last failure is what the caller sees.
func TestRetriesStopAtTheDeadline(t *testing.T) {
	ctx := newDeadline()
	faults := make([]fault, 1000)
	for i := range faults {
		faults[i] = status(503)
	}
	faults[2] = ctx.expireThen(status(503))
	c, s, _ := newRetryClient(t, faults...)
	_, err := c.Kube.CoreV1().ConfigMaps("ns").Get(ctx, "c", metav1.GetOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsServiceUnavailable(err), "the last answer is returned: %v", err)
	assert.Equal(t, 3, s.count(), "no attempt after the deadline")
}

// An attempt that the deadline cuts short does not hide the answer before
// it: the caller learns the server was unavailable, not merely that time
// ran out.
func TestADeadlineCuttingAnAttemptKeepsTheLastAnswer(t *testing.T) {
	ctx := newDeadline()
	release := make(chan struct{})
	c, s, _ := newRetryClient(t, status(503), ctx.expireThen(func(http.ResponseWriter) { <-release }))
	// Cleanups run last-first: the handler is released before the server closes.
	t.Cleanup(func() { close(release) })
	_, err := c.Kube.CoreV1().ConfigMaps("ns").Get(ctx, "c", metav1.GetOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsServiceUnavailable(err), "the last answer is returned: %v", err)
	assert.Equal(t, 2, s.count())
}

// Streams upgraded for exec are never sent twice.
func TestExecIsNotRetried(t *testing.T) {
	c, s, _ := newRetryClient(t, status(503))
	err := c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace("ns").Name("p").SubResource("exec").Do(context.Background()).Error()
	require.Error(t, err)
	assert.Equal(t, 1, s.calls)
}

// closedPort returns the address of a port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// A cluster that is down or a wrong address fails at once, as in kubectl,
// instead of after minutes of silent retries: before the API server has
// answered, a connection that cannot be opened is final.
func TestARefusedFirstConnectionIsNotRetried(t *testing.T) {
	retries := 0
	r := DefaultRetry()
	r.OnRetry = func(*http.Request, int, string, time.Duration) { retries++ }
	c, err := NewClientForConfig(&rest.Config{Host: "http://" + closedPort(t), QPS: -1}, "ns", true, nil, r)
	require.NoError(t, err)
	_, err = c.Kube.CoreV1().ConfigMaps("ns").Get(context.Background(), "c", metav1.GetOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Zero(t, retries, "no retry before the API server ever answered")
	_, err = c.Kube.Discovery().ServerVersion()
	require.Error(t, err)
	assert.Zero(t, retries, "nor on the other clients")
}

// Once the API server has answered, the same refusal is a restart: every
// client of the command rides it out.
func TestARefusedConnectionAfterAnAnswerIsRetried(t *testing.T) {
	ts := httptest.NewServer(&server{})
	c, reasons := retryClientFor(t, ts.URL, 200*time.Millisecond)
	_, err := c.Kube.CoreV1().ConfigMaps("ns").Get(context.Background(), "c", metav1.GetOptions{})
	require.NoError(t, err)
	ts.Close()
	_, err = c.Dynamic.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("ns").Get(context.Background(), "c", metav1.GetOptions{})
	require.Error(t, err)
	// The request has returned: no retry is still running.
	require.NotEmpty(t, *reasons, "the refusal after an answer is retried")
	assert.Equal(t, "connection refused", (*reasons)[0])
}
