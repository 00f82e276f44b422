package kube

import (
	"context"
	"fmt"
	"sync"

	utilversion "k8s.io/apimachinery/pkg/util/version"
)

// The Kubernetes minors kubectl-sts is tested on: the compatibility suite
// runs on the oldest, the whole e2e suite on the newest (hack/testbed/versions.env
// builds both; docs/compatibility.md). This is the one place of the range.
const (
	OldestTestedMinor = 32
	NewestTestedMinor = 37
)

// TestedRange is the tested range as people write it, "v1.32-v1.37".
func TestedRange() string {
	return fmt.Sprintf("v1.%d-v1.%d", OldestTestedMinor, NewestTestedMinor)
}

// Server is what discovery tells about the API server: its version, and
// from it which of the behaviours that changed across minors it has. A
// server whose version cannot be read (Known false) is taken to be the
// newest tested one for what the workflows decide, and the fields the API
// keeps are still read back where that matters (maxUnavailable).
type Server struct {
	// GitVersion is what the server reports, e.g. "v1.32.2".
	GitVersion string `json:"gitVersion"`
	// Major and Minor are parsed from GitVersion; zero when Known is false.
	Major int `json:"major,omitempty"`
	Minor int `json:"minor,omitempty"`
	// Known is false when GitVersion is not a version (fakes, some proxies).
	Known bool `json:"known"`
}

// ParseServer reads a server's GitVersion.
func ParseServer(gitVersion string) Server {
	s := Server{GitVersion: gitVersion}
	v, err := utilversion.ParseGeneric(gitVersion)
	if err != nil || v.Major() == 0 {
		return s
	}
	s.Major, s.Minor, s.Known = int(v.Major()), int(v.Minor()), true
	return s
}

// AtLeast reports whether the server is 1.minor or newer; an unknown
// server counts as the newest tested minor.
func (s Server) AtLeast(minor int) bool {
	if !s.Known {
		return NewestTestedMinor >= minor
	}
	return s.Major > 1 || s.Major == 1 && s.Minor >= minor
}

// Tested reports whether the server's minor lies in the tested range. An
// unknown version is not judged (true).
func (s Server) Tested() bool {
	if !s.Known {
		return true
	}
	return s.Major == 1 && s.Minor >= OldestTestedMinor && s.Minor <= NewestTestedMinor
}

// RangeWarning is the warning a command prints once on a server outside
// the tested range; empty inside it.
func (s Server) RangeWarning() string {
	if s.Tested() {
		return ""
	}
	return fmt.Sprintf("Warning: the cluster runs Kubernetes %s, outside the range kubectl-sts is tested on (%s); "+
		"it should work, but behaviours that changed across releases may differ (see docs/compatibility.md)", s.GitVersion, TestedRange())
}

// OnDeleteCurrentRevisionReliable reports whether the StatefulSet
// controller moves status.currentRevision forward for the OnDelete
// strategy (1.37 and later); before, it stays at the revision the set
// was created with, and the current revision must be read from the pods.
func (s Server) OnDeleteCurrentRevisionReliable() bool { return s.AtLeast(37) }

// LowersRequestAfterFailedExpansion reports whether the server lets a
// claim's request go down, to above status.capacity, after a failed
// expansion (RecoverVolumeExpansionFailure: beta and on by default in
// 1.32 and 1.33, GA from 1.34). Older servers refuse any lower request.
func (s Server) LowersRequestAfterFailedExpansion() bool { return s.AtLeast(32) }

// serverCache holds one discovery answer per client.
type serverCache struct {
	once   sync.Once
	server Server
	err    error
}

// WithServerCache returns a copy of c that asks the API server for its
// version once (Server), however often it is called.
func (c *Client) WithServerCache() *Client {
	out := *c
	out.server = &serverCache{}
	return &out
}

// Server asks the API server for its version: once for a client from
// WithServerCache, else on every call.
func (c *Client) Server(ctx context.Context) (Server, error) {
	get := func() (Server, error) {
		if err := ctx.Err(); err != nil {
			return Server{}, err
		}
		v, err := c.Kube.Discovery().ServerVersionWithContext(ctx)
		if err != nil {
			return Server{}, fmt.Errorf("reading the server version: %w", err)
		}
		return ParseServer(v.GitVersion), nil
	}
	if c.server == nil {
		return get()
	}
	c.server.once.Do(func() { c.server.server, c.server.err = get() })
	return c.server.server, c.server.err
}
