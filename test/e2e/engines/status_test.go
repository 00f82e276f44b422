package engines

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	statuscmd "github.com/kubectl-sts/kubectl-sts/pkg/cmd/status"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

// runStatus runs `kubectl sts status` in-process against the test bed,
// with the engine detected from the StatefulSet as --engine auto would.
func runStatus(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	client := &kube.Client{Kube: cluster.Client, Config: cluster.RESTConfig, Namespace: ns,
		Exec: cluster.Executor()}
	f := cmdtesting.NewFakeOptionsWithClient(client, nil)
	o := statuscmd.NewOptions(f.Options)
	registry := all.New()
	o.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) { return registry.Detect(sts, "") }
	cmd := statuscmd.NewCmd(o)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(f.Out)
	cmd.SetErr(f.ErrOut)
	err := cmd.ExecuteContext(context.Background())
	code := cmdutil.ExitOK
	if err != nil {
		var exit *cmdutil.ExitError
		require.ErrorAs(t, err, &exit, "status failed: %v\n%s", err, f.ErrOut)
		code = exit.Code
	}
	return f.Out.String(), code
}

func TestStatusShowsPostgresRolesLagAndSlots(t *testing.T) {
	s := newPGSet(t)

	out, code := runStatus(t, s.ns, "pg", "-o", "json")
	assert.Equal(t, cmdutil.ExitDegraded, code, "pg-2 does not answer")
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.NotNil(t, r.Engine)
	assert.Equal(t, "postgres", r.Engine.Name)
	assert.False(t, r.Engine.Healthy)
	require.Len(t, r.Members, 3)
	assert.Equal(t, plugins.RolePrimary, r.Members[0].Role)
	assert.Equal(t, plugins.RoleReplica, r.Members[1].Role)
	assert.Equal(t, "streaming", r.Members[1].State)
	require.NotNil(t, r.Members[1].LagBytes)
	assert.Equal(t, plugins.RoleUnknown, r.Members[2].Role)
	var slots []string
	for _, sl := range r.Members[0].Slots {
		slots = append(slots, sl.Name)
	}
	assert.ElementsMatch(t, []string{"backup_keep", "pg_1", "pg_2"}, slots)
	assert.NotContains(t, out, pgPassword)

	out, _ = runStatus(t, s.ns, "pg")
	t.Logf("table:\n%s", out)
	assert.Contains(t, out, "postgres")
	header := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "POD") {
			header = line
		}
	}
	for _, col := range []string{"ROLE", "LAG", "SLOTS"} {
		assert.Contains(t, header, col)
	}
	assert.Regexp(t, `(?m)^pg-0\s.*\bprimary\b`, out)
	assert.Regexp(t, `(?m)^pg-1\s.*\breplica\b`, out)
	assert.Regexp(t, `(?m)^pg-2\s.*\bunknown\b`, out)
	assert.NotContains(t, out, pgPassword)

	// Once pg-2 is gone and its slot dropped, the set is healthy.
	s.scaleTo(2)
	require.NoError(t, s.engine.AfterRemove(context.Background(), s.target(), 2, plugins.RemoveOptions{}))
	out, code = runStatus(t, s.ns, "pg", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	assert.True(t, r.Engine.Healthy, "engine: %+v", r.Engine)
	assert.Equal(t, cmdutil.ExitOK, code, out)
}
