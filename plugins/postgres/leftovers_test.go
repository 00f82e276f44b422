package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// leftoverViews are the recorded servers with, on the primary, a slot of
// removed ordinal 2 by another naming style (standby_pg_2) and a logical
// slot named for removed ordinal 3.
func leftoverViews(t *testing.T) map[string]string {
	primary := fixture(t, "primary.json")
	primary["slots"] = append(primary["slots"].([]any),
		map[string]any{"name": "standby_pg_2", "type": "physical", "active": false, "retainedBytes": 1 << 20},
		map[string]any{"name": "pg_3", "type": "logical", "active": false})
	return map[string]string{"pg-0": encode(t, primary), "pg-1": encode(t, fixture(t, "replica.json"))}
}

func byName(ls []plugins.Leftover) map[string]plugins.Leftover {
	out := map[string]plugins.Leftover{}
	for _, l := range ls {
		out[l.Name] = l
	}
	return out
}

func TestLeftoversAreTheRemovedMembersInactivePhysicalSlots(t *testing.T) {
	e := newEnv(t, leftoverViews(t))
	ls, err := New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 2})
	require.NoError(t, err)
	got := byName(ls)
	assert.Len(t, got, 3, "only slots named for removed ordinals: not pg_1, backup_slot or cdc")
	assert.True(t, got["pg_2"].Drop, got["pg_2"].Reason)
	assert.Equal(t, "inactive, named for ordinal 2, which is not a member", got["pg_2"].Reason)
	assert.Equal(t, "pg-0", got["pg_2"].On)
	require.NotNil(t, got["pg_2"].RetainedBytes)
	assert.Equal(t, int64(23201592), *got["pg_2"].RetainedBytes)
	assert.True(t, got["standby_pg_2"].Drop, got["standby_pg_2"].Reason)
	require.NotNil(t, got["standby_pg_2"].Ordinal)
	assert.Equal(t, 2, *got["standby_pg_2"].Ordinal)
	assert.False(t, got["pg_3"].Drop)
	assert.Equal(t, "it is a logical slot, not a replica's: name it with --slot pg_3 to drop it", got["pg_3"].Reason)
	for _, q := range e.servers["pg-0"].queries {
		assert.NotContains(t, q, "pg_drop_replication_slot", "listing changes nothing")
	}
}

func TestLeftoversNamedExplicitly(t *testing.T) {
	e := newEnv(t, leftoverViews(t))
	ls, err := New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 2,
		Names: []string{"backup_slot", "pg_3", "pg_1", "gone_slot"}})
	require.NoError(t, err)
	got := byName(ls)
	assert.True(t, got["backup_slot"].Drop, "an unknown name is dropped when named")
	assert.Equal(t, "inactive, named with --slot, used by no member", got["backup_slot"].Reason)
	assert.Nil(t, got["backup_slot"].Ordinal)
	assert.True(t, got["pg_3"].Drop, "a logical slot is dropped when named")
	assert.False(t, got["pg_1"].Drop, "a slot a remaining member streams from never is")
	assert.Equal(t, "pod pg-1 streams from it", got["pg_1"].Reason)
	assert.False(t, got["gone_slot"].Drop)
	assert.Equal(t, "no replication slot gone_slot on pg-0 (already dropped)", got["gone_slot"].Reason)

	_, err = New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 2, Names: []string{"x'; DROP TABLE t; --"}})
	assert.ErrorContains(t, err, "may contain only lower-case letters, digits and underscores")
}

func TestLeftoversNeverOfAMemberOrAnActiveSlot(t *testing.T) {
	views := leftoverViews(t)
	e := newEnv(t, views)
	// Desired 1 replica while pg-1 still exists and streams from pg_1.
	ls, err := New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 1})
	require.NoError(t, err)
	got := byName(ls)
	assert.False(t, got["pg_1"].Drop)
	assert.Equal(t, "pod pg-1 streams from it", got["pg_1"].Reason)

	// Named explicitly, the slot of a member that stays is not dropped.
	ls, err = New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 3, Names: []string{"pg_2"}})
	require.NoError(t, err)
	got = byName(ls)
	assert.False(t, got["pg_2"].Drop)
	assert.Equal(t, "it is named for pg-2, which is a member", got["pg_2"].Reason)
}

func TestLeftoversNeedThePrimaryAndEveryMember(t *testing.T) {
	views := leftoverViews(t)
	e := newEnv(t, map[string]string{"pg-0": views["pg-1"]})
	_, err := New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 1})
	assert.ErrorContains(t, err, "cannot tell which member holds the replication slots: no member is primary")

	e = newEnv(t, views)
	e.servers["pg-1"].fail = "psql: error: connection refused"
	ls, err := New().Leftovers(context.Background(), e.target, plugins.LeftoverOptions{Replicas: 2})
	require.NoError(t, err)
	got := byName(ls)
	assert.False(t, got["pg_2"].Drop)
	assert.Equal(t, "pod pg-1 did not answer, so which slot it streams from is unknown", got["pg_2"].Reason)
}

func TestDropLeftoverDropsOnlyWhatIsStillSafe(t *testing.T) {
	e := newEnv(t, leftoverViews(t))
	e.servers["pg-0"].slots = map[string]bool{"pg_2": false, "standby_pg_2": false}
	eng, _ := testEngine()
	opts := plugins.LeftoverOptions{Replicas: 2}
	ls, err := eng.Leftovers(context.Background(), e.target, opts)
	require.NoError(t, err)
	got := byName(ls)

	dry := e.opts()
	dry.DryRun = true
	require.NoError(t, eng.DropLeftover(context.Background(), e.target, got["standby_pg_2"], opts, dry))
	assert.Empty(t, e.servers["pg-0"].drops, "a dry run drops nothing")

	require.NoError(t, eng.DropLeftover(context.Background(), e.target, got["standby_pg_2"], opts, e.opts()))
	assert.Equal(t, []string{"standby_pg_2"}, e.servers["pg-0"].drops)
	last := e.events[len(e.events)-1]
	assert.Equal(t, plugins.ActionChanged, last.Action)
	assert.Equal(t, "dropped replication slot standby_pg_2 on pg-0 (it retained 1.0MiB of WAL)", last.Message)

	// pg_2 became active since it was listed: the drop finds it active,
	// drops nothing, and says so.
	e.servers["pg-0"].slots["pg_2"] = true
	err = eng.DropLeftover(context.Background(), e.target, got["pg_2"], opts, e.opts())
	assert.ErrorContains(t, err, "replication slot pg_2 on pg-0 became active: something streams from it again; it was not dropped")
	assert.Equal(t, []string{"standby_pg_2"}, e.servers["pg-0"].drops)

	// A logical slot listed as not to drop is refused even if passed in.
	err = eng.DropLeftover(context.Background(), e.target, got["pg_3"], opts, e.opts())
	assert.ErrorContains(t, err, "not dropping replication slot pg_3 on pg-0: it is a logical slot")
}
