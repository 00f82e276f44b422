package dbserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const zookeeperPackage = "zookeeper"

// ZooKeeper is an ensemble of real ZooKeeper servers from the Debian
// package, each a JVM on loopback ports with its data in a temporary
// directory.
type ZooKeeper struct {
	Servers []*ZKServer
	// CliDir holds zkCli.sh.
	CliDir string
}

// ZKServer is one server of the ensemble.
type ZKServer struct {
	ID         int
	ClientPort int
	Dir        string
	Observer   bool

	java, jar string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
}

// ZooKeeperOptions configure an ensemble.
type ZooKeeperOptions struct {
	// Participants and Observers are how many servers of each kind.
	Participants, Observers int
	// Reconfig sets reconfigEnabled (with skipACL, so zkCli.sh may
	// reconfigure without a super user).
	Reconfig bool
}

// StartZooKeeper starts the ensemble and returns once one server leads and
// every server serves. It is stopped when t ends.
func StartZooKeeper(t testing.TB, opts ZooKeeperOptions) *ZooKeeper {
	t.Helper()
	java := findBinary(t, "default-jre-headless", "java")
	jar := "/usr/share/java/zookeeper.jar"
	if !fileExists(jar) {
		t.Fatalf("dbserver: %s not found: install the Debian package %s", jar, zookeeperPackage)
	}
	cli := findBinary(t, zookeeperPackage, "/usr/share/zookeeper/bin/zkCli.sh", "zkCli.sh")
	z := &ZooKeeper{CliDir: filepath.Dir(cli)}
	n := opts.Participants + opts.Observers
	var lines []string
	for i := 1; i <= n; i++ {
		s := &ZKServer{ID: i, ClientPort: freePort(t), Dir: serverDir(t, "zookeeper", nil), Observer: i > opts.Participants}
		role := "participant"
		if s.Observer {
			role = "observer"
		}
		lines = append(lines, fmt.Sprintf("server.%d=127.0.0.1:%d:%d:%s;127.0.0.1:%d", i, freePort(t), freePort(t), role, s.ClientPort))
		z.Servers = append(z.Servers, s)
	}
	for _, s := range z.Servers {
		cfg := []string{
			"tickTime=200", "initLimit=50", "syncLimit=25",
			"dataDir=" + filepath.Join(s.Dir, "data"),
			"standaloneEnabled=false", "admin.enableServer=false", "4lw.commands.whitelist=*",
			"reconfigEnabled=" + strconv.FormatBool(opts.Reconfig),
		}
		if opts.Reconfig {
			cfg = append(cfg, "skipACL=yes")
		}
		if s.Observer {
			cfg = append(cfg, "peerType=observer")
		}
		cfg = append(cfg, lines...)
		if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o755); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "data", "myid"), []byte(strconv.Itoa(s.ID)+"\n"), 0o644); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
		if err := os.WriteFile(s.ConfigFile(), []byte(strings.Join(cfg, "\n")+"\n"), 0o644); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
		s.java, s.jar = java, jar
		if err := s.Start(); err != nil {
			t.Fatalf("dbserver: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, s := range z.Servers {
			s.Stop()
		}
	})
	err := waitUntil(startTimeout, func() error {
		leaders := 0
		for _, s := range z.Servers {
			out, err := s.Word("srvr")
			if err != nil {
				return err
			}
			switch {
			case strings.Contains(out, "Mode: leader"):
				leaders++
			case strings.Contains(out, "Mode: follower"), strings.Contains(out, "Mode: observer"):
			default:
				return fmt.Errorf("server %d: %s", s.ID, strings.TrimSpace(out))
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d leaders", leaders)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dbserver: ZooKeeper ensemble did not come up: %v\n%s", err, tail(filepath.Join(z.Servers[0].Dir, "zookeeper.log"), 20))
	}
	return z
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ConfigFile is the server's zoo.cfg.
func (s *ZKServer) ConfigFile() string { return filepath.Join(s.Dir, "zoo.cfg") }

// Env is a pod's environment: the client port the engine reads (Bitnami's
// ZOO_PORT_NUMBER), the configuration file, and zkCli.sh on PATH.
func (z *ZooKeeper) Env(s *ZKServer) map[string]string {
	return map[string]string{
		"ZOO_PORT_NUMBER": strconv.Itoa(s.ClientPort),
		"ZOOCFG":          s.ConfigFile(),
		"PATH":            z.CliDir + ":" + os.Getenv("PATH"),
	}
}

// Word sends a four-letter word to the server and returns the answer.
func (s *ZKServer) Word(w string) (string, error) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.ClientPort), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(w)); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// Membership returns the server lines of the server's own view (conf).
func (s *ZKServer) Membership() ([]string, error) {
	out, err := s.Word("conf")
	if err != nil {
		return nil, err
	}
	var servers []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "server.") {
			id, _, _ := strings.Cut(strings.TrimPrefix(l, "server."), "=")
			servers = append(servers, "server."+id)
		}
	}
	return servers, nil
}

// Start starts the server's JVM again after Stop (as a kubelet starts a
// replaced pod's container); it keeps its data. Starting a running server
// does nothing.
func (s *ZKServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.java, "-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.log.dir="+s.Dir, "-Dzookeeper.root.logger=WARN,CONSOLE",
		"-cp", s.Dir+":"+s.jar, "org.apache.zookeeper.server.quorum.QuorumPeerMain", s.ConfigFile())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting ZooKeeper server %d: %w", s.ID, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	return nil
}

// Mode is the server's mode from srvr (leader, follower, observer), or ""
// when it does not serve.
func (s *ZKServer) Mode() string {
	m, _ := s.ModeZxid()
	return m
}

// ModeZxid is the server's mode and last zxid from srvr; "" when it does
// not serve.
func (s *ZKServer) ModeZxid() (mode, zxid string) {
	out, err := s.Word("srvr")
	if err != nil {
		return "", ""
	}
	for _, l := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(l, "Mode: "); ok {
			mode = strings.TrimSpace(m)
		}
		if z, ok := strings.CutPrefix(l, "Zxid: "); ok {
			zxid = strings.TrimSpace(z)
		}
	}
	return mode, zxid
}

// Create creates the znode path with data through zkCli.sh on server s:
// one transaction, which every synced server then has, so all report the
// same last zxid.
func (z *ZooKeeper) Create(s *ZKServer, path, data string) error {
	cmd := exec.Command(filepath.Join(z.CliDir, "zkCli.sh"), "-server", "127.0.0.1:"+strconv.Itoa(s.ClientPort), "create", path, data)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Created "+path) {
		return fmt.Errorf("zkCli.sh create %s on server %d: %v: %s", path, s.ID, err, out)
	}
	return nil
}

// Stop kills the server and waits for it.
func (s *ZKServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}
