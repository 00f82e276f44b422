// Package e2e benchmarks kubectl sts on the test bed's real control plane:
// the staged rollout beside the shell runbooks people copy (bench/runbooks)
// and beside the controller alone, reaction latency, API requests per
// workflow, status at growing sizes, engine fan-out, expand-pvc and
// scale-down beside their runbooks, start-up, binary size and peak memory.
//
// `go test ./bench/e2e` runs a short smoke of it; `make bench-e2e` runs
// the full benchmark and writes its figures into docs/benchmarks.md.
package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

// fullEnv selects the full benchmark; it names the file whose generated
// section receives the figures.
const fullEnv = "KUBECTL_STS_BENCH_DOC"

func TestMain(m *testing.M) {
	opts := testbed.Options{Name: "bench", Nodes: 3}
	if os.Getenv(fullEnv) != "" {
		// Room for the 1000 replicas of the memory part and the pods of
		// an earlier part still going. At a kubelet's 110 pods a node,
		// the scheduler left pods Pending ("Too many pods") while a
		// finished part's namespace was still being emptied.
		opts.Nodes, opts.PodsPerNode = 6, 300
	}
	os.Exit(testbed.Main(m, opts, &cluster))
}

// config is what one run measures.
type config struct {
	rollouts   []sizeRepeat // staged rollout sizes and repetitions
	runbooks   int          // largest size the runbooks run at, beside the plugin and the controller
	sleep10    int          // largest size the `sleep 10` runbook runs at
	statuses   []int        // status sizes
	fanout     []int        // engine fan-out sizes
	ordinals   int          // expand-pvc and scale-down ordinals; 0 skips
	memory     []int        // sizes of the peak-memory runs of status and rollout
	startupRun int          // runs of the start-up measurement
}

type sizeRepeat struct {
	replicas, repeat int
	// terminate is how long a deleted pod takes to go (the test bed's
	// terminate-delay), as a database's graceful shutdown does; the old
	// pod stays Ready meanwhile.
	terminate time.Duration
}

func smoke() config {
	return config{rollouts: []sizeRepeat{{3, 1, time.Second}}, runbooks: 3, statuses: []int{3}, startupRun: 1}
}

func full() config {
	return config{
		rollouts:   []sizeRepeat{{10, 3, time.Second}, {200, 1, 0}},
		runbooks:   10, // each kubectl a process: seconds a pod on a loaded machine
		sleep10:    10,
		statuses:   []int{3, 50, 200},
		fanout:     []int{1, 50},
		ordinals:   10,
		memory:     []int{1000},
		startupRun: 5,
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
