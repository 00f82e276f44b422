package expandpvc

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// expand-pvc restarts the primary last, so it refuses before any change
// when the engine cannot tell which member is the primary: here both pods
// are real Redis replicas of a primary outside the StatefulSet. --force
// goes ahead in ordinal order.
func TestUnknownPrimaryIsRefusedWithNothingChanged(t *testing.T) {
	const password = "redis-s3cret"
	primary := dbserver.StartRedis(t, dbserver.RedisOptions{Password: password})
	replicas := []*dbserver.Redis{primary.StartReplica(t), primary.StartReplica(t)}

	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	for i, r := range replicas {
		env := r.Env()
		env["REDIS_PASSWORD"] = password
		env["KUBECTL_STS_TEST_POD"] = fmt.Sprintf("db-%d", i)
		require.NoError(t, cluster.MapExec(ctx, testbed.ExecMapping{Namespace: ns, Pod: fmt.Sprintf("db-%d", i), Env: env, WorkDir: t.TempDir()}))
	}
	sts := newStatefulSet(ns, "db", 2, "testbed-offline")
	sts.Annotations = map[string]string{plugins.AnnotationEngine: "redis"}
	create(t, sts)
	// KWOK applies a mapping asynchronously: wait until each pod's exec
	// runs with its own environment, so the refusal is the engine's
	// judgement and not an unmapped pod.
	ex := cluster.Executor()
	for i := range replicas {
		pod := fmt.Sprintf("db-%d", i)
		poll.Until(t, "exec in "+pod+" mapped", func(ctx context.Context) (bool, error) {
			res, err := ex.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: pod, Container: "app",
				Command: []string{"sh", "-c", `printf %s "$KUBECTL_STS_TEST_POD"`}})
			return err == nil && res.ExitCode == 0 && string(res.Stdout) == pod, nil
		})
	}
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, r.Code)
	assert.Contains(t, r.ErrOut, "the redis engine cannot tell which member is the primary (no member is primary")
	assert.NotContains(t, r.ErrOut, "no answer from", "both pods answered, as replicas")
	assert.Contains(t, r.ErrOut, "nothing was changed")
	assert.NotContains(t, r.ErrOut+r.Out, password)
	assertUnchanged(t, ns, before)

	r = run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--force", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "--force: the redis engine cannot tell which member is the primary")
	assertUnchanged(t, ns, before)
}
