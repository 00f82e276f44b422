// Package engines tests the database engines end to end: real PostgreSQL,
// MariaDB, Redis and etcd servers (test/dbserver) behind fake pods of a
// real control plane (test/testbed), reached through the real exec path:
// kube.PodExecutor → kube-apiserver → KWOK → a local command whose
// environment points it at its pod's server.
package engines

import (
	"fmt"
	"os"
	"testing"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	// The etcd engine runs etcdctl with no shell, as in the distroless etcd
	// images: KWOK, which runs the pods' commands, finds it on its PATH.
	if dir, err := testbed.BinDir(); err == nil {
		if err := os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(testbed.Main(m, testbed.Options{Nodes: 2}, &cluster))
}
