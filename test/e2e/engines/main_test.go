// Package engines tests the database engines end to end: real PostgreSQL,
// MariaDB and Redis servers (test/dbserver) behind fake pods of a real
// control plane (test/testbed), reached through the real exec path:
// kube.PodExecutor → kube-apiserver → KWOK → a local command whose
// environment points it at its pod's server.
package engines

import (
	"os"
	"testing"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) { os.Exit(testbed.Main(m, testbed.Options{Nodes: 2}, &cluster)) }
