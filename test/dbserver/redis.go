package dbserver

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const redisPackage = "redis-server"

// RedisOptions configure a Redis server.
type RedisOptions struct {
	// Password for requirepass (and masterauth of replicas); empty means
	// no authentication.
	Password string
}

// Redis is a running Redis server on Host:Port.
type Redis struct {
	Host     string
	Port     int
	Password string
	Dir      string
	// Primary is the server this one replicates from, nil for a primary.
	Primary *Redis

	server, cli string
	logFile     string
	extra       []string

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// StartRedis starts a primary without persistence, stopped when t ends.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	r := newRedis(t, opts.Password)
	r.start(t, nil)
	return r
}

// StartReplica starts a replica of r and returns once its link is up.
func (r *Redis) StartReplica(t testing.TB) *Redis {
	t.Helper()
	rep := newRedis(t, r.Password)
	rep.Primary = r
	rep.start(t, []string{"--replicaof", r.Host, strconv.Itoa(r.Port)})
	if err := rep.waitLinkUp(); err != nil {
		t.Fatalf("dbserver: Redis replica on port %d: %v\n%s", rep.Port, err, tail(rep.logFile, 20))
	}
	return rep
}

// waitLinkUp returns once a replica's link to its primary is up, or the
// last state it saw when startTimeout has passed.
func (r *Redis) waitLinkUp() error {
	return waitShows(func() (string, error) { return r.DoErr("INFO", "replication") }, "replica link not up", "master_link_status:up")
}

func newRedis(t testing.TB, password string) *Redis {
	t.Helper()
	r := &Redis{
		Host: "127.0.0.1", Password: password,
		server: findBinary(t, redisPackage, "redis-server", "valkey-server"),
		cli:    findBinary(t, "redis-tools", "redis-cli", "valkey-cli"),
	}
	// Redis runs as any user, root included.
	r.Dir = serverDir(t, "redis", nil)
	r.logFile = filepath.Join(r.Dir, "redis.log")
	return r
}

func (r *Redis) start(t testing.TB, extra []string) {
	t.Helper()
	r.extra = extra
	r.startOn(t, 0)
	t.Cleanup(func() { r.Stop(t) })
}

// startOn starts the server on port, or on a free port when port is 0.
// The caller arranges the stop: Stop ends whichever process runs.
func (r *Redis) startOn(t testing.TB, port int) {
	t.Helper()
	extra := r.extra
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r.Port = port
		if port == 0 {
			r.Port = freePort(t)
		}
		args := []string{"--port", strconv.Itoa(r.Port), "--bind", r.Host, "--dir", r.Dir, "--logfile", r.logFile,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"}
		if r.Password != "" {
			args = append(args, "--requirepass", r.Password, "--masterauth", r.Password)
		}
		cmd := exec.Command(r.server, append(args, extra...)...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("dbserver: starting redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		r.cmd, r.exited = cmd, exited
		lastErr = waitUntil(30*time.Second, func() error {
			select {
			case <-exited:
				return nil
			default:
			}
			out, err := r.DoErr("PING")
			if err == nil && strings.TrimSpace(out) != "PONG" {
				err = fmt.Errorf("PING answered %q", out)
			}
			return err
		})
		select {
		case <-exited:
			lastErr = fmt.Errorf("redis-server exited")
			continue
		default:
		}
		if lastErr == nil {
			return
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("dbserver: starting Redis: %v\n%s", lastErr, tail(r.logFile, 20))
}

// Stop shuts the server down; it is safe to call again.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.stopOnce.Do(func() {
		_ = r.cmd.Process.Kill()
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("dbserver: Redis on port %d did not exit", r.Port)
		}
	})
}

// Restart stops the server and starts it again on the same port, with
// the same arguments; a replica is waited for until its link is up.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop(t)
	r.stopOnce = sync.Once{}
	r.startOn(t, r.Port)
	if r.Primary == nil {
		return
	}
	if err := r.waitLinkUp(); err != nil {
		t.Fatalf("dbserver: restarted Redis replica on port %d: %v\n%s", r.Port, err, tail(r.logFile, 20))
	}
}

// Env points redis-cli at this server: REDIS_PORT_NUMBER is the port
// variable of the Bitnami images, which kubectl-sts's Redis engine reads;
// the password is not included.
func (r *Redis) Env() map[string]string {
	return map[string]string{"REDIS_PORT_NUMBER": strconv.Itoa(r.Port)}
}

// DoErr runs one command with redis-cli and returns its raw output.
func (r *Redis) DoErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var env []string
	if r.Password != "" {
		env = append(env, "REDISCLI_AUTH="+r.Password)
	}
	out, err := run(ctx, env, append([]string{r.cli, "-h", r.Host, "-p", strconv.Itoa(r.Port)}, args...)...)
	if err == nil && (strings.HasPrefix(out, "ERR") || strings.HasPrefix(out, "NOAUTH") || strings.HasPrefix(out, "WRONGPASS")) {
		err = fmt.Errorf("redis-cli %s: %s", strings.Join(args, " "), strings.TrimSpace(out))
	}
	return out, err
}

// Do is DoErr that fails the test on error.
func (r *Redis) Do(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.DoErr(args...)
	if err != nil {
		t.Fatalf("dbserver: on Redis port %d: %v", r.Port, err)
	}
	return strings.TrimSpace(out)
}
