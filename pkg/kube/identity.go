package kube

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// FieldManager is the default field manager of every write: what
// managedFields and `kubectl get --show-managed-fields` name as the owner of
// the fields the plugin set.
const FieldManager = "kubectl-sts"

// UserAgent is what the API server's audit log sees: kubectl-sts/VERSION
// (OS/ARCH), as kubectl sends kubectl/VERSION (OS/ARCH).
func UserAgent(version string) string {
	return fmt.Sprintf("%s/%s (%s/%s)", FieldManager, version, runtime.GOOS, runtime.GOARCH)
}

// Identify returns a copy of cfg whose requests carry userAgent and whose
// writes (POST, PUT, PATCH) name fieldManager. Setting it on the transport
// rather than on each call means no write, present or future, can forget it.
func Identify(cfg *rest.Config, userAgent, fieldManager string) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.UserAgent = userAgent
	if fieldManager != "" {
		out.Wrap(func(next http.RoundTripper) http.RoundTripper {
			return &fieldManagerTransport{name: fieldManager, next: next}
		})
	}
	return out
}

// Identified returns a client whose clientset is rebuilt from c's config
// through Identify. A client without a config (a fake) is returned as is.
func (c *Client) Identified(userAgent, fieldManager string) (*Client, error) {
	if c.Config == nil {
		return c, nil
	}
	cfg := Identify(c.Config, userAgent, fieldManager)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot build a Kubernetes client: %w", err)
	}
	out := *c
	out.Kube, out.Config = cs, cfg
	return &out, nil
}

type fieldManagerTransport struct {
	name string
	next http.RoundTripper
}

// WrappedRoundTripper lets client-go see through the wrapper, so that a
// request that runs out of --request-timeout is cancelled without a warning.
func (t *fieldManagerTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (t *fieldManagerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return t.next.RoundTrip(req)
	}
	if isConnect(req.URL.Path) || req.URL.Query().Has("fieldManager") {
		return t.next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	q := req.URL.Query()
	q.Set("fieldManager", t.name)
	req.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(req)
}

// isConnect tells the streaming subresources, which are not writes and take
// their own query parameters.
func isConnect(path string) bool {
	for _, sub := range []string{"/exec", "/attach", "/portforward"} {
		if strings.HasSuffix(path, sub) {
			return true
		}
	}
	return strings.Contains(path, "/proxy")
}
