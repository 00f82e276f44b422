package engines

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// runCommand runs a kubectl sts command line in-process against the test
// bed, through the real exec path, on the real clock (the workflows time
// their waits with it).
func runCommand(t *testing.T, ns string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	client := &kube.Client{Kube: cluster.Client, Config: cluster.RESTConfig, Namespace: ns,
		Exec: kube.NewPodExecutor(cluster.RESTConfig, cluster.Client)}
	f := e2eutil.Fake(client)
	code = cmd.Run(context.Background(), f.Options, args)
	t.Logf("kubectl sts %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, f.Out, f.ErrOut)
	return f.Out.String(), f.ErrOut.String(), code
}

// A rollout on a replica set that is already broken (pg-2 has no server)
// is refused before anything changes, with the engine's reasons; --force
// plans it anyway and says why. So is a scale-down whose remaining
// members are not healthy.
func TestRolloutRefusesAnAlreadyBrokenReplicaSet(t *testing.T) {
	s := newPGSet(t)
	before := s.tracker.Snapshot().StatefulSet.ResourceVersion

	_, stderr, code := runCommand(t, s.ns, "rollout", "pg", "--staged", "--image", "db=postgres:16", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, stderr, "postgres reports the replica set of statefulset pg unhealthy before any change")
	assert.Contains(t, stderr, "no answer from pg-2")
	assert.Contains(t, stderr, "--force")
	sts, err := cluster.Client.AppsV1().StatefulSets(s.ns).Get(context.Background(), "pg", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, before, sts.ResourceVersion, "nothing changed")
	assert.Equal(t, "docker.io/library/postgres:15", sts.Spec.Template.Spec.Containers[1].Image)

	stdout, _, code := runCommand(t, s.ns, "rollout", "pg", "--staged", "--image", "db=postgres:16", "--force", "--dry-run")
	assert.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, stdout, "--force: starting although postgres reports the replica set unhealthy")

	// scale-down checks the engine the same way before its first change:
	// with the replica's server stopped, the members that would stay
	// (pg-0, pg-1) are not healthy, although pg-2, the one removed, is
	// the broken one to begin with.
	s.replica.Stop(t)
	_, stderr, code = runCommand(t, s.ns, "scale-down", "pg", "--replicas", "2", "--pvc", "keep", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, code)
	assert.Contains(t, stderr, "refusing to change statefulset pg; nothing was changed")
	assert.Contains(t, stderr, "no answer from pg-1")
	assert.Contains(t, stderr, "pass --force to proceed anyway")
	sts, err = cluster.Client.AppsV1().StatefulSets(s.ns).Get(context.Background(), "pg", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, before, sts.ResourceVersion, "nothing changed")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1", "pg_2"}, slotNames(t, s.primary))
	stdout, _, code = runCommand(t, s.ns, "scale-down", "pg", "--replicas", "2", "--pvc", "keep", "--force", "--dry-run")
	assert.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, stdout, "--force: proceeding although")

	// A bound Redis-style engines cannot measure is refused at plan time.
	_, stderr, code = runCommand(t, s.ns, "rollout", "pg", "--staged", "--image", "db=postgres:16", "--engine", "redis", "--max-lag", "10s", "--yes")
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, stderr, "redis measures replication lag in bytes only")
}

// A member whose slot is named outside the derived conventions
// (standby_pg_2) keeps it after scale-down: the summary lists it, status
// names it, and the unrelated backup_keep survives. cleanup then drops
// it, after a dry run and a confirmation, and leaves backup_keep and the
// slot the remaining replica streams from.
func TestScaleDownListsTheSlotItLeavesAndCleanupDropsIt(t *testing.T) {
	s := newPGSet(t)
	s.primary.Query(t, "SELECT pg_create_physical_replication_slot('standby_pg_2', true)")

	stdout, _, code := runCommand(t, s.ns, "scale-down", "pg", "--replicas", "2", "--engine", "postgres", "--pvc", "keep", "--yes", "--step-timeout", "2m")
	require.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, stdout, "left in place of removed members: slot standby_pg_2")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1", "standby_pg_2"}, slotNames(t, s.primary))

	r, code := statusReport(t, s.ns, "pg")
	assert.Equal(t, cmdutil.ExitDegraded, code)
	got := reasonsByObject(r)
	assert.Contains(t, got, "LeftoverSlot slot/standby_pg_2")
	assert.NotContains(t, got, "LeftoverSlot slot/backup_keep")

	// The dry run lists what goes and what stays, and drops nothing.
	stdout, _, code = runCommand(t, s.ns, "cleanup", "pg", "--dry-run=client")
	require.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, stdout, "slot standby_pg_2 on pg-0, retaining ")
	assert.Contains(t, stdout, "→ drop (inactive, named for ordinal 2, which is not a member)")
	assert.NotContains(t, stdout, "backup_keep", "a slot named for no member is not a leftover")
	assert.Contains(t, stdout, "Dry run: nothing was changed.")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1", "standby_pg_2"}, slotNames(t, s.primary))

	// Without --yes and no terminal to ask on: refused, nothing dropped.
	_, stderr, code := runCommand(t, s.ns, "cleanup", "pg")
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, stderr, "Drop 1 replication slot on pg-0 (standby_pg_2)? needs confirmation")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1", "standby_pg_2"}, slotNames(t, s.primary))

	// The slot the remaining replica streams from is never dropped, even
	// when named.
	stdout, _, code = runCommand(t, s.ns, "cleanup", "pg", "--slot", "pg_1", "--yes")
	require.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, stdout, "slot pg_1 on pg-0")
	assert.Contains(t, stdout, "left: pod pg-1 streams from it")
	assert.Contains(t, stdout, "dropped replication slot standby_pg_2 on pg-0")
	assert.Contains(t, stdout, "1 replication slot dropped (standby_pg_2)")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary))

	r, code = statusReport(t, s.ns, "pg")
	assert.NotContains(t, reasonsByObject(r), "LeftoverSlot slot/standby_pg_2")
	assert.Equal(t, cmdutil.ExitOK, code, "nothing left to name")
	events, err := cluster.Client.CoreV1().Events(s.ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var recorded []string
	for _, e := range events.Items {
		if e.Reason == "CleanupSlotDropped" {
			recorded = append(recorded, e.Message)
		}
	}
	assert.Len(t, recorded, 1, "one Event records the drop")
	assert.Contains(t, fmt.Sprint(recorded), "dropped replication slot standby_pg_2 on pg-0")
}
