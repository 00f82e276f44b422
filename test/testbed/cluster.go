// Package testbed runs a local Kubernetes control plane for end-to-end
// tests: real etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, with KWOK simulating the nodes and kubelets, brought up by
// kwokctl's binary runtime. See docs/testbed.md.
package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure a test bed cluster.
type Options struct {
	// Nodes is the number of fake nodes; 0 means 3.
	Nodes int
	// PodsPerNode is each node's pod capacity; 0 means 110, a kubelet's
	// default. The nodes are simulated: a benchmark of many replicas can
	// give them more instead of adding nodes, each of which kwok keeps
	// alive with its own heartbeats.
	PodsPerNode int
	// Version is the Kubernetes minor of the control plane: Current (the
	// zero value) or Compat, the old minor of the compatibility suite.
	Version Version
	// Name is the cluster name prefix ("testbed" if empty); a random suffix
	// keeps concurrent clusters apart unless ExactName is set.
	Name string
	// ExactName uses Name as is, for long-lived clusters (hack/cluster-up.sh).
	ExactName bool
	// WorkDir holds all the cluster's files. If empty, a new temporary
	// directory is used and removed by Stop.
	WorkDir string
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

// Cluster is a running test bed cluster.
type Cluster struct {
	Name        string
	Kubeconfig  string // path of the cluster's own kubeconfig file
	KubectlPath string // the kubectl built for the test bed
	BinDir      string
	WorkDir     string
	// StartupTime is how long Start took, binaries already built.
	StartupTime time.Duration
	// ServerVersion is what the API server reports, e.g. "v1.37.2".
	ServerVersion string

	RESTConfig *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface

	kwokWorkDir string
	ownWorkDir  bool
	logf        func(format string, args ...any)

	stopOnce sync.Once
	stopErr  error
}

const (
	workDirPrefix = "kubectl-sts-testbed-"
	ownerFile     = "owner"
	startTimeout  = 2 * time.Minute
)

// Start brings up a cluster with fake nodes, the test bed's storage classes
// and stages. The caller must Stop it; a cluster whose process died is
// removed by a later Start.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	began := time.Now()
	binDir, err := BinDirOf(opts.Version)
	if err != nil {
		return nil, err
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	sweepStale(binDir, logf)

	name := opts.Name
	if name == "" {
		name = "testbed"
	}
	if !opts.ExactName {
		name += "-" + randomSuffix(3)
	}
	if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(name) || len(name) > 50 {
		return nil, fmt.Errorf("testbed: cluster name %q must be lowercase letters, digits and '-', at most 50 long", name)
	}

	c = &Cluster{
		Name:        name,
		BinDir:      binDir,
		KubectlPath: filepath.Join(binDir, "kubectl"),
		WorkDir:     opts.WorkDir,
		logf:        logf,
	}
	if c.WorkDir == "" {
		if c.WorkDir, err = os.MkdirTemp("", workDirPrefix); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		c.ownWorkDir = true
	} else if err := os.MkdirAll(c.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	c.kwokWorkDir = filepath.Join(c.WorkDir, "kwok")
	c.Kubeconfig = filepath.Join(c.kwokWorkDir, "clusters", name, "kubeconfig.yaml")
	defer func() {
		if err != nil {
			if kept := c.keepLogs(); kept != "" {
				err = fmt.Errorf("%w\n(logs of the failed cluster kept in %s)", err, kept)
			}
			if stopErr := c.Stop(context.WithoutCancel(ctx)); stopErr != nil {
				logf("testbed: cleaning up after a failed start: %v", stopErr)
			}
			c = nil
		}
	}()
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), name)
	if err := os.WriteFile(filepath.Join(c.WorkDir, ownerFile), []byte(owner), 0o644); err != nil {
		return c, fmt.Errorf("testbed: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.create(ctx); err != nil {
		return c, err
	}
	if err := c.connect(); err != nil {
		return c, err
	}
	if err := c.waitControlPlane(ctx); err != nil {
		return c, err
	}
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		return c, fmt.Errorf("testbed: reading the server version: %w", err)
	}
	c.ServerVersion = v.GitVersion
	if err := c.applyStorageClasses(ctx); err != nil {
		return c, err
	}
	if err := c.createNodes(ctx, opts.Nodes, opts.PodsPerNode); err != nil {
		return c, err
	}
	c.StartupTime = time.Since(began)
	logf("testbed: cluster %s (Kubernetes %s) up in %s (kubeconfig %s)", name, c.ServerVersion, c.StartupTime.Round(time.Millisecond), c.Kubeconfig)
	return c, nil
}

// create runs kwokctl. It retries once with new ports, in case another
// process took one of them in between.
func (c *Cluster) create(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		if err = c.createOnce(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		c.logf("testbed: creating cluster %s failed (attempt %d): %v", c.Name, attempt, err)
		_ = c.kwokctl(context.WithoutCancel(ctx), nil, "delete", "cluster", "--kubeconfig="+filepath.Join(c.WorkDir, "unused-kubeconfig.yaml"))
	}
	return err
}

func (c *Cluster) createOnce(ctx context.Context) error {
	p, err := freePorts()
	if err != nil {
		return err
	}
	conf, err := kwokctlConfig(c.BinDir, p)
	if err != nil {
		return err
	}
	confPath := filepath.Join(c.WorkDir, "kwokctl.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	logPath := filepath.Join(c.WorkDir, "kwokctl-create.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	defer logFile.Close()
	// Without --wait: kwokctl's readiness poll is slow; waitControlPlane
	// checks what the tests need, more often.
	err = c.kwokctl(ctx, logFile, "create", "cluster", "--config", confPath, "--kubeconfig=")
	if err != nil {
		return fmt.Errorf("testbed: kwokctl create cluster %s failed: %w\n%s", c.Name, err, tail(logPath, 30))
	}
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		return fmt.Errorf("testbed: kwokctl created cluster %s but wrote no kubeconfig: %w", c.Name, err)
	}
	return nil
}

// kwokctl runs the kwokctl binary on this cluster with an environment of its
// own, so nothing is shared with ~/.kwok or with other clusters.
func (c *Cluster) kwokctl(ctx context.Context, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kwokctl"), append([]string{"--name", c.Name}, args...)...)
	cmd.Env = append(cleanEnv("KWOK_", "KUBECONFIG="), "KWOK_WORKDIR="+c.kwokWorkDir)
	var buf bytes.Buffer
	if out == nil {
		out = &buf
	}
	cmd.Stdout, cmd.Stderr = out, out
	// kwokctl leaves the components running in the background; do not wait
	// for their inherited output pipes.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if buf.Len() > 0 {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(buf.String()))
		}
		return err
	}
	return nil
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("testbed: reading %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.RESTConfig = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

// waitControlPlane waits until the API server is ready and the controller
// manager and the scheduler hold their leader leases, that is, run.
func (c *Cluster) waitControlPlane(ctx context.Context) error {
	var missing string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			missing = "kube-apiserver /readyz"
			return false, nil
		}
		for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
			lease, err := c.Client.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
				missing = name + " leader lease"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("testbed: cluster %s not ready, waiting for %s: %w", c.Name, missing, err)
	}
	return nil
}

func (c *Cluster) applyStorageClasses(ctx context.Context) error {
	data, err := files.ReadFile("manifests/storage-classes.yaml")
	if err != nil {
		return err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var sc storagev1.StorageClass
		if err := dec.Decode(&sc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("testbed: manifests/storage-classes.yaml: %w", err)
		}
		if sc.Name == "" {
			continue
		}
		if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, &sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("testbed: creating StorageClass %s: %w", sc.Name, err)
		}
	}
}

// createNodes registers fake nodes, as kubelets would, and waits until kwok
// reports them Ready.
func (c *Cluster) createNodes(ctx context.Context, n, podsPerNode int) error {
	if podsPerNode == 0 {
		podsPerNode = 110
	}
	pods := *resource.NewQuantity(int64(podsPerNode), resource.DecimalSI)
	for i := range n {
		name := fmt.Sprintf("testbed-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Annotations: map[string]string{
					"kwok.x-k8s.io/node":           "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
				Labels: map[string]string{
					"kubernetes.io/arch":     "amd64",
					"kubernetes.io/os":       "linux",
					"kubernetes.io/hostname": name,
					"type":                   "kwok",
				},
			},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   pods,
				},
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   pods,
				},
			},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("testbed: creating node %s: %w", name, err)
		}
	}
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, nd := range nodes.Items {
			for _, cond := range nd.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
	if err != nil {
		return fmt.Errorf("testbed: %d fake nodes did not become Ready (see kwok-controller.log): %w", n, err)
	}
	return nil
}

// keepLogs saves the logs of a cluster whose start failed from the removal
// of its temporary work directory, and returns where they are.
func (c *Cluster) keepLogs() string {
	if !c.ownWorkDir {
		return filepath.Join(c.kwokWorkDir, "clusters", c.Name, "logs")
	}
	dir, err := os.MkdirTemp("", "kubectl-sts-testbed-logs-")
	if err != nil {
		return ""
	}
	_ = os.Rename(filepath.Join(c.kwokWorkDir, "clusters", c.Name, "logs"), filepath.Join(dir, "logs"))
	_ = os.Rename(filepath.Join(c.WorkDir, "kwokctl-create.log"), filepath.Join(dir, "kwokctl-create.log"))
	_ = os.Rename(filepath.Join(c.WorkDir, "kwokctl.yaml"), filepath.Join(dir, "kwokctl.yaml"))
	return dir
}

// Stop deletes the cluster: its processes and, if Start created it, its
// work directory. It is safe to call more than once.
func (c *Cluster) Stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() {
		var errs []error
		clusterDir := filepath.Join(c.kwokWorkDir, "clusters", c.Name)
		if _, err := os.Stat(clusterDir); err == nil {
			// kwokctl wants a kubeconfig to remove the cluster's context
			// from; give it one of ours, never the user's.
			unused := "--kubeconfig=" + filepath.Join(c.WorkDir, "unused-kubeconfig.yaml")
			if err := c.kwokctl(ctx, nil, "delete", "cluster", unused); err != nil {
				errs = append(errs, fmt.Errorf("testbed: kwokctl delete cluster %s: %w", c.Name, err))
				killComponents(clusterDir)
			}
		}
		if c.ownWorkDir {
			if err := os.RemoveAll(c.WorkDir); err != nil {
				errs = append(errs, fmt.Errorf("testbed: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// NewNamespace creates a namespace unique to the test, ready for pods (its
// default service account exists), and deletes it when the test ends.
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	base := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	name := "t-" + base + "-" + randomSuffix(3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testbed: creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("testbed: deleting namespace %s: %v", name, err)
		}
	})
	// Pods are refused until the service account controller made "default".
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("testbed: namespace %s has no default service account: %v", name, err)
	}
	return name
}

// Kubectl runs the test bed's kubectl against this cluster and returns its
// standard output; on failure the error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := c.KubectlCmd(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// KubectlCmd returns an unstarted kubectl command for this cluster, for
// callers that need its input or output streams.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.KubectlPath, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Env = cleanEnv("KUBECONFIG=")
	return cmd
}

// LogPath returns the log file of one of the cluster's components, such
// as "kwok-controller" or "kube-controller-manager", for failure messages.
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.kwokWorkDir, "clusters", c.Name, "logs", component+".log")
}

// Env returns environment entries that point kubectl (or a kubectl plugin)
// at this cluster: KUBECONFIG.
func (c *Cluster) Env() []string {
	return []string{"KUBECONFIG=" + c.Kubeconfig}
}

// cleanEnv returns the process environment without entries whose
// "NAME=" starts with one of the prefixes.
func cleanEnv(prefixes ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

func randomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sweepStale deletes clusters left in the temporary directory by test
// processes that died without stopping them (a go test timeout, a kill).
func sweepStale(binDir string, logf func(string, ...any)) {
	sweep(binDir, logf, func(pid int) bool { return !processAlive(pid) })
}

// stopOwnClusters deletes every cluster this process started in the
// temporary directory, also those a test started itself. The work
// directories' owner files serve as the list, so no global state is kept.
func stopOwnClusters(binDir string, logf func(string, ...any)) {
	self := os.Getpid()
	sweep(binDir, logf, func(pid int) bool { return pid == self })
}

func sweep(binDir string, logf func(string, ...any), match func(pid int) bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		var pid int
		var name string
		if _, err := fmt.Sscanf(string(data), "%d %s", &pid, &name); err != nil || pid <= 0 || !match(pid) {
			continue
		}
		logf("testbed: deleting cluster %s of process %d", name, pid)
		c := &Cluster{Name: name, BinDir: binDir, WorkDir: dir, kwokWorkDir: filepath.Join(dir, "kwok"), ownWorkDir: true, logf: logf}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.Stop(ctx); err != nil {
			logf("testbed: %v", err)
		}
		cancel()
	}
}

// killComponents kills the processes kwokctl started for a cluster, from
// their pid files, when kwokctl could not delete the cluster itself.
func killComponents(clusterDir string) {
	pidFiles, _ := filepath.Glob(filepath.Join(clusterDir, "pids", "*.pid"))
	for _, f := range pidFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
