package engines

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// TestScaleDownCommandDropsTheRemovedMembersSlot runs the whole command, as
// a user would, against a real PostgreSQL primary through the real exec
// path: the removed member's slot is dropped, every other slot stays.
func TestScaleDownCommandDropsTheRemovedMembersSlot(t *testing.T) {
	s := newPGSet(t)
	require.ElementsMatch(t, []string{"backup_keep", "pg_1", "pg_2"}, slotNames(t, s.primary))

	client := &kube.Client{Kube: cluster.Client, Config: cluster.RESTConfig, Namespace: s.ns,
		Exec: cluster.Executor()}
	// pg-2 has no server: the set is judged on the members that stay, so
	// the broken member being removed does not block its own removal.
	f := cmdtesting.NewFakeOptionsWithClient(client, nil)
	code := cmd.Run(context.Background(), f.Options, []string{"scale-down", "pg", "--replicas", "2", "--engine", "postgres", "--pvc", "keep", "--yes", "--step-timeout", "2m"})
	require.Equal(t, cmdutil.ExitOK, code, "stdout:\n%s\nstderr:\n%s", f.Out, f.ErrOut)

	assert.ElementsMatch(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary), "only pg-2's slot is dropped")
	assert.Contains(t, f.Out.String(), "pg_2")
	assert.NotContains(t, f.Out.String()+f.ErrOut.String(), pgPassword, "no credential is printed")

	// A dry run of removing pg-1 says its slot is active and would be
	// waited for, and changes nothing.
	f = cmdtesting.NewFakeOptionsWithClient(client, nil)
	code = cmd.Run(context.Background(), f.Options, []string{"scale-down", "pg", "--replicas", "1", "--engine", "postgres", "--dry-run"})
	require.Equal(t, cmdutil.ExitOK, code, "%s%s", f.Out, f.ErrOut)
	assert.Contains(t, f.Out.String(), "would drop replication slot pg_1")
	assert.Contains(t, f.Out.String(), "active")
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1"}, slotNames(t, s.primary), "a dry run drops nothing")
}
