// Package dbserver starts real database servers on this machine for tests:
// PostgreSQL, MariaDB and Redis from their Debian packages, each with an
// optional streaming replica, on free loopback ports with their data in a
// temporary directory, torn down when the test ends.
//
// PostgreSQL and MariaDB refuse to run as root, so when the tests run as
// root the servers run as their packages' service users (postgres, mysql);
// clients run as the test's own user. A missing binary fails the test with
// the Debian package to install: engine tests never skip.
package dbserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// startTimeout bounds starting one server, including its first sync.
const startTimeout = 2 * time.Minute

// findBinary returns the first existing path among candidates (absolute
// paths or globs; highest match wins) or names on PATH, or fails the test
// naming the Debian package that provides it.
func findBinary(t testing.TB, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if strings.ContainsAny(c, "*?[") {
			matches, _ := filepath.Glob(c)
			sort.Sort(sort.Reverse(sort.StringSlice(matches)))
			for _, m := range matches {
				if isExecutable(m) {
					return m
				}
			}
			continue
		}
		if filepath.IsAbs(c) {
			if isExecutable(c) {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatalf("dbserver: none of %s found: install the Debian package %s "+
		"(hack/install-deps.sh does, as root: sudo hack/install-deps.sh)", strings.Join(candidates, ", "), pkg)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dbserver: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serviceUser is the account a server runs as: the package's service user
// when running as root, else nobody in particular (the current user).
type serviceUser struct {
	name     string
	uid, gid int
}

func (u *serviceUser) wrap(argv []string) []string {
	if u == nil {
		return argv
	}
	return append([]string{"runuser", "-u", u.name, "--"}, argv...)
}

// lookupServiceUser returns the service user when running as root, nil
// otherwise; it fails the test when root and the user does not exist.
func lookupServiceUser(t testing.TB, name, pkg string) *serviceUser {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("dbserver: user %s not found (%v): install the Debian package %s, which creates it", name, err, pkg)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &serviceUser{name: name, uid: uid, gid: gid}
}

// serverDir makes a private directory for one server, owned by its
// service user, removed when the test ends. It is not under t.TempDir():
// that directory is closed to other users.
func serverDir(t testing.TB, prefix string, u *serviceUser) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubectl-sts-"+prefix+"-")
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("dbserver: removing %s: %v", dir, err)
		}
	})
	if u != nil {
		if err := os.Chown(dir, u.uid, u.gid); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
	}
	return dir
}

// run runs argv with extra env and returns its combined output; the error
// carries the output.
func run(ctx context.Context, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func mustRun(t testing.TB, env []string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := run(ctx, env, argv...)
	if err != nil {
		t.Fatalf("dbserver: %v", err)
	}
	return out
}

// waitUntil polls check until it returns nil or the timeout passes.
func waitUntil(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitShows reads with read until its output contains every string of
// want, for at most startTimeout. Until then the error is what read
// returned, or notYet followed by the output.
func waitShows(read func() (string, error), notYet string, want ...string) error {
	return waitUntil(startTimeout, func() error {
		out, err := read()
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("%s:\n%s", notYet, out)
			}
		}
		return nil
	})
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// LocalExec is a kube.Executor that runs commands on this machine instead
// of in pods, with per-pod environment: the same mapping the test bed's
// KWOK exec gives, without a control plane, for quick checks of an engine.
type LocalExec struct {
	// Env maps a pod name to the environment its commands get on top of
	// the test process's own.
	Env map[string]map[string]string
}

// Exec implements kube.Executor.
func (l *LocalExec) Exec(ctx context.Context, req kube.ExecRequest) (kube.ExecResult, error) {
	env, ok := l.Env[req.Pod]
	if !ok {
		return kube.ExecResult{}, fmt.Errorf("local exec: no mapping for pod %s", req.Pod)
	}
	if len(req.Command) == 0 {
		return kube.ExecResult{}, errors.New("local exec: empty command")
	}
	cmd := exec.CommandContext(ctx, req.Command[0], req.Command[1:]...)
	cmd.Env = append(os.Environ(), envList(env)...)
	cmd.Stdin = req.Stdin
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := kube.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee) && ee.Exited():
		res.ExitCode = ee.ExitCode()
		return res, nil
	default:
		return res, err
	}
}
