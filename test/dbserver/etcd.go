package dbserver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// Etcd is a cluster of real etcd processes on loopback ports, built by the
// test bed (hack/testbed/build.sh builds etcd and etcdctl at the pinned
// release). Members are named like the pods they stand for.
type Etcd struct {
	Members []*EtcdMember
	etcd    string
	etcdctl string
}

// EtcdMember is one etcd process.
type EtcdMember struct {
	Name       string
	ClientPort int
	PeerPort   int
	Dir        string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
}

// ClientURL is where the member serves clients.
func (m *EtcdMember) ClientURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.ClientPort) }

func (m *EtcdMember) peerURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.PeerPort) }

// StartEtcd starts a cluster of one member per name and returns once every
// member answers and one leads. It is stopped when t ends.
func StartEtcd(t testing.TB, names ...string) *Etcd {
	t.Helper()
	bin, err := testbed.BinDir()
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	c := &Etcd{etcd: filepath.Join(bin, "etcd"), etcdctl: filepath.Join(bin, "etcdctl")}
	if !isExecutable(c.etcdctl) {
		t.Fatalf("dbserver: %s is missing: run `make testbed` (hack/testbed/build.sh builds etcdctl next to etcd)", c.etcdctl)
	}
	var initial []string
	for _, n := range names {
		m := &EtcdMember{Name: n, ClientPort: freePort(t), PeerPort: freePort(t), Dir: serverDir(t, "etcd", nil)}
		m.logFile = filepath.Join(m.Dir, "etcd.log")
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.peerURL())
	}
	for _, m := range c.Members {
		c.start(t, m, "new", strings.Join(initial, ","))
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Stop()
		}
	})
	if err := waitUntil(startTimeout, func() error { _, err := c.Status(c.Members...); return err }); err != nil {
		t.Fatalf("dbserver: etcd cluster did not come up: %v\n%s", err, tail(c.Members[0].logFile, 20))
	}
	return c
}

func (c *Etcd) start(t testing.TB, m *EtcdMember, state, initial string) {
	t.Helper()
	args := []string{
		"--name", m.Name, "--data-dir", filepath.Join(m.Dir, "data"),
		"--listen-client-urls", m.ClientURL(), "--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.peerURL(), "--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", initial, "--initial-cluster-state", state, "--initial-cluster-token", "kubectl-sts-test",
		"--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn",
	}
	logf, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	cmd := exec.Command(c.etcd, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("dbserver: starting etcd %s: %v", m.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
}

// AddLearner adds a member named name as a learner (`etcdctl member add
// --learner`), starts it, and returns once it answers. It is stopped with
// the cluster.
func (c *Etcd) AddLearner(t testing.TB, name string) *EtcdMember {
	t.Helper()
	m := &EtcdMember{Name: name, ClientPort: freePort(t), PeerPort: freePort(t), Dir: serverDir(t, "etcd", nil)}
	m.logFile = filepath.Join(m.Dir, "etcd.log")
	// etcd refuses a member add until its leader has been connected to
	// its peers for 5s ("unhealthy cluster"): a new cluster must wait.
	err := waitUntil(startTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.ctl(ctx, "--endpoints", c.Members[0].ClientURL(), "member", "add", name, "--peer-urls", m.peerURL(), "--learner")
		return err
	})
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	var initial []string
	for _, o := range append(c.Members, m) {
		initial = append(initial, o.Name+"="+o.peerURL())
	}
	c.Members = append(c.Members, m)
	c.start(t, m, "existing", strings.Join(initial, ","))
	if err := waitUntil(startTimeout, func() error { _, err := c.Status(m); return err }); err != nil {
		t.Fatalf("dbserver: etcd learner %s did not come up: %v\n%s", name, err, tail(m.logFile, 20))
	}
	return m
}

// Stop kills the member's process (as a crash would) and waits for it.
func (m *EtcdMember) Stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-exited
}

// Pause freezes the member (SIGSTOP): it keeps its ports but answers
// nothing and falls behind, until Resume.
func (m *EtcdMember) Pause() { m.signal(syscall.SIGSTOP) }

// Resume thaws a paused member.
func (m *EtcdMember) Resume() { m.signal(syscall.SIGCONT) }

func (m *EtcdMember) signal(s syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(s)
	}
}

// Exited reports whether the member's process has ended (etcd exits by
// itself once removed from the membership).
func (m *EtcdMember) Exited() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// Restart starts a stopped member again on its data.
func (c *Etcd) Restart(t testing.TB, m *EtcdMember) {
	t.Helper()
	m.Stop()
	var initial []string
	for _, o := range c.Members {
		initial = append(initial, o.Name+"="+o.peerURL())
	}
	c.start(t, m, "existing", strings.Join(initial, ","))
}

// Env is a pod's environment: etcdctl pointed at the member, as
// ETCDCTL_ENDPOINTS would be set in the pod.
func (c *Etcd) Env(m *EtcdMember) map[string]string {
	return map[string]string{"ETCDCTL_ENDPOINTS": m.ClientURL()}
}

// BinDir holds etcd and etcdctl. The engine runs etcdctl with no shell, so
// whatever runs the pods' commands (the test bed's kwok, LocalExec) must
// find it on its own PATH.
func (c *Etcd) BinDir() string { return filepath.Dir(c.etcdctl) }

// MemberStatus is one member's answer to `etcdctl endpoint status`.
type MemberStatus struct {
	Endpoint string
	ID       uint64
	Leader   uint64
	Term     uint64
	Applied  uint64
}

// Status asks each of members for `etcdctl endpoint status` and returns
// the answers; an error when any does not answer or they disagree on the
// leader.
func (c *Etcd) Status(members ...*EtcdMember) ([]MemberStatus, error) {
	var eps []string
	for _, m := range members {
		eps = append(eps, m.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.ctl(ctx, "--endpoints", strings.Join(eps, ","), "endpoint", "status", "-w", "json")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Endpoint string `json:"Endpoint"`
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader           uint64 `json:"leader"`
			RaftTerm         uint64 `json:"raftTerm"`
			RaftAppliedIndex uint64 `json:"raftAppliedIndex"`
		} `json:"Status"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("endpoint status: %w: %s", err, out)
	}
	var st []MemberStatus
	for _, r := range raw {
		s := MemberStatus{Endpoint: r.Endpoint, ID: r.Status.Header.MemberID, Leader: r.Status.Leader, Term: r.Status.RaftTerm, Applied: r.Status.RaftAppliedIndex}
		if s.Leader == 0 {
			return st, fmt.Errorf("%s has no leader", s.Endpoint)
		}
		if len(st) > 0 && st[0].Leader != s.Leader {
			return st, fmt.Errorf("%s follows %x, %s follows %x", s.Endpoint, s.Leader, st[0].Endpoint, st[0].Leader)
		}
		st = append(st, s)
	}
	if len(st) != len(members) {
		return st, fmt.Errorf("%d of %d members answered", len(st), len(members))
	}
	return st, nil
}

// MemberNames returns the names in the membership as members sees it.
func (c *Etcd) MemberNames(m *EtcdMember) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.ctl(ctx, "--endpoints", m.ClientURL(), "member", "list", "-w", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("member list: %w: %s", err, out)
	}
	var names []string
	for _, x := range list.Members {
		names = append(names, x.Name)
	}
	return names, nil
}

// Put writes a key through member m.
func (c *Etcd) Put(m *EtcdMember, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.ctl(ctx, "--endpoints", m.ClientURL(), "put", key, value)
	return err
}

// MoveLeader hands the leadership to member to.
func (c *Etcd) MoveLeader(to *EtcdMember) error {
	st, err := c.Status(c.Members...)
	if err != nil {
		return err
	}
	var leaderURL, toID string
	for _, s := range st {
		if s.ID == s.Leader {
			leaderURL = s.Endpoint
		}
		if s.Endpoint == to.ClientURL() {
			toID = strconv.FormatUint(s.ID, 16)
		}
	}
	if leaderURL == to.ClientURL() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.ctl(ctx, "--endpoints", leaderURL, "move-leader", toID)
	return err
}

// ctl runs the test's own etcdctl and returns its standard output; the
// error carries standard error.
func (c *Etcd) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.etcdctl, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("etcdctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
