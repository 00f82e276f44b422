package engines

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/all"
	"github.com/kubectl-sts/kubectl-sts/test/dbserver"
)

const redisPassword = "redis-s3cret"

// redisEnv: the port and password variables of the Bitnami image; the
// engine hands the password to redis-cli as REDISCLI_AUTH.
func redisEnv(r *dbserver.Redis) map[string]string {
	env := r.Env()
	env["REDIS_PASSWORD"] = redisPassword
	return env
}

func TestRedisRolesAndOffsets(t *testing.T) {
	primary := dbserver.StartRedis(t, dbserver.RedisOptions{Password: redisPassword})
	replica := primary.StartReplica(t)
	for i := 0; i < 100; i++ {
		primary.Do(t, "SET", "key"+strconv.Itoa(i), "value")
	}
	b := newBed(t, "cache", "valkey/valkey:8", []map[string]string{redisEnv(primary), redisEnv(replica)})
	e, err := all.New().Detect(b.tracker.Snapshot().StatefulSet, "")
	require.NoError(t, err)
	require.NotNil(t, e)
	require.Equal(t, "redis", e.Name())

	ctx := context.Background()
	gate := plugins.HealthGate(e, b.target(), plugins.HealthOptions{MaxLagBytes: 1 << 20}, 500*time.Millisecond)
	require.NoError(t, wait.WaitGates(ctx, b.tracker, waitTimeout, gate))

	var ms []plugins.Member
	deadline := time.Now().Add(waitTimeout)
	for {
		ms = members(t, e, b.target())
		if len(ms) == 2 && ms[1].LagBytes != nil && *ms[1].LagBytes == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	mustNotLeak(t, redisPassword, ms)
	require.Len(t, ms, 2)
	assert.Equal(t, plugins.RolePrimary, ms[0].Role)
	assert.Equal(t, "1", ms[0].Details["connectedReplicas"])
	assert.Equal(t, plugins.RoleReplica, ms[1].Role)
	assert.Equal(t, "link up", ms[1].State)
	require.NotNil(t, ms[1].LagBytes)
	assert.Equal(t, int64(0), *ms[1].LagBytes, "caught up")
	offset, err := strconv.ParseInt(ms[0].Details["offset"], 10, 64)
	require.NoError(t, err)
	assert.Greater(t, offset, int64(1000), "100 writes moved the replication offset")
	assert.Equal(t, ms[0].Details["offset"], ms[1].Details["offset"])

	assert.ErrorContains(t, e.BeforeRemove(ctx, b.target(), 0, plugins.RemoveOptions{}), "pod cache-0 is the primary")
	assert.NoError(t, e.BeforeRemove(ctx, b.target(), 1, plugins.RemoveOptions{}))

	// A replica whose primary is gone: link down.
	primary.Stop(t)
	deadline = time.Now().Add(waitTimeout)
	for {
		ms = members(t, e, b.target())
		if ms[1].State == "link down" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Equal(t, plugins.RoleUnknown, ms[0].Role)
	assert.Equal(t, "link down", ms[1].State)
	ok, reason := e.Healthy(ms, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "no answer from cache-0")
}
