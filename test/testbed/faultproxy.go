package testbed

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Faults a FaultProxy injects.
const (
	Fault500      = "500"
	Fault503      = "503"
	Fault429      = "429+Retry-After"
	FaultReset    = "connection reset"
	FaultLost     = "response lost after the write applied"
	FaultWatchCut = "watch stream cut"
	FaultDown     = "API server down"
)

// FaultProxy stands between a client and the test bed's API server and
// makes requests fail the way a loaded or restarting API server does, on
// a schedule drawn from a seeded random source so a failing run can be
// replayed. It speaks plain HTTP to the client and forwards with the test
// bed's administrator credentials.
type FaultProxy struct {
	// URL is where clients connect.
	URL string

	target *url.URL
	rt     http.RoundTripper
	proxy  *httputil.ReverseProxy

	mu     sync.Mutex
	rng    *rand.Rand
	rate   float64
	lose   func(*http.Request) bool
	down   bool
	counts map[string]int
	total  int
}

// StartFaultProxy starts a proxy in front of the cluster that fails rate
// (0..1) of the requests, drawing which and how from seed. It stops when
// the test ends.
func (c *Cluster) StartFaultProxy(t testing.TB, seed uint64, rate float64) *FaultProxy {
	t.Helper()
	target, err := url.Parse(c.RESTConfig.Host)
	if err != nil {
		t.Fatalf("testbed: API server address %q: %v", c.RESTConfig.Host, err)
	}
	rt, err := rest.TransportFor(c.RESTConfig)
	if err != nil {
		t.Fatalf("testbed: transport to the API server: %v", err)
	}
	p := &FaultProxy{target: target, rt: rt, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rate: rate, counts: map[string]int{}}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     rt,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Config is a client configuration that goes through the proxy.
func (p *FaultProxy) Config() *rest.Config {
	return &rest.Config{Host: p.URL, QPS: 100, Burst: 200}
}

// LoseWrites makes every write that match selects apply while its answer
// is lost, on top of the random schedule; nil stops it.
func (p *FaultProxy) LoseWrites(match func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose = match
}

// SetDown makes the API server unreachable through the proxy (every
// connection is reset) until it is set back.
func (p *FaultProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Counts returns how many requests went through and how many of each
// fault were injected.
func (p *FaultProxy) Counts() (total int, faults map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return p.total, out
}

// Summary is Counts as one line.
func (p *FaultProxy) Summary() string {
	total, faults := p.Counts()
	var parts []string
	n := 0
	for k, v := range faults {
		parts = append(parts, k+": "+itoa(v))
		n += v
	}
	sort.Strings(parts)
	return itoa(total) + " requests, " + itoa(n) + " faults (" + strings.Join(parts, ", ") + ")"
}

func itoa(n int) string { return strconv.Itoa(n) }

func isWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func isWatch(r *http.Request) bool { return r.URL.Query().Get("watch") == "true" }

// streaming requests (exec, attach, port-forward, logs) pass untouched.
func streaming(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return true
	}
	for _, s := range []string{"/exec", "/attach", "/portforward", "/log"} {
		if strings.HasSuffix(r.URL.Path, s) {
			return true
		}
	}
	return false
}

// pick draws the fault for one request; "" forwards it untouched.
func (p *FaultProxy) pick(r *http.Request) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	if streaming(r) {
		return ""
	}
	if p.down {
		p.counts[FaultDown]++
		return FaultDown
	}
	if isWrite(r) && p.lose != nil && p.lose(r) {
		p.counts[FaultLost]++
		return FaultLost
	}
	if p.rng.Float64() >= p.rate {
		return ""
	}
	kinds := []string{Fault500, Fault503, Fault429, FaultReset}
	if isWrite(r) {
		kinds = append(kinds, FaultLost, FaultLost)
	}
	if isWatch(r) {
		kinds = append(kinds, FaultWatchCut, FaultWatchCut)
	}
	k := kinds[p.rng.IntN(len(kinds))]
	p.counts[k]++
	return k
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p.pick(r) {
	case Fault500:
		writeStatus(w, http.StatusInternalServerError, "injected: internal error", "")
	case Fault503:
		writeStatus(w, http.StatusServiceUnavailable, "injected: the server is currently unable to handle the request", "")
	case Fault429:
		writeStatus(w, http.StatusTooManyRequests, "injected: too many requests, please try again later", "1")
	case FaultReset, FaultDown:
		hangUp(w)
	case FaultLost:
		p.forwardThenHangUp(w, r)
	case FaultWatchCut:
		p.mu.Lock()
		after := time.Duration(200+p.rng.IntN(2800)) * time.Millisecond
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.Context(), after)
		defer cancel()
		p.proxy.ServeHTTP(w, r.WithContext(ctx))
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// forwardThenHangUp sends the request to the API server, so it applies,
// and closes the client's connection without the answer.
func (p *FaultProxy) forwardThenHangUp(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = p.target.Scheme, p.target.Host, p.target.Host
	if resp, err := p.rt.RoundTrip(out); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	hangUp(w)
}

// hangUp closes the connection without an answer: the client sees a reset
// or EOF.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not an orderly close
	}
	_ = conn.Close()
}

func writeStatus(w http.ResponseWriter, code int, msg, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Message: msg,
		Reason: metav1.StatusReason(strings.ReplaceAll(http.StatusText(code), " ", "")),
	})
}
