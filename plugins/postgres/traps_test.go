package postgres

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func TestSlotOrdinal(t *testing.T) {
	for slot, want := range map[string]int{"pg_2": 2, "slot_pg_2": 2, "_cnpg_pg_2": 2, "standby_pg_12": 12, "repmgr_slot_1003": 3} {
		o, ok := SlotOrdinal("pg", slot)
		assert.True(t, ok, slot)
		assert.Equal(t, want, o, slot)
	}
	for _, slot := range []string{"backup_keep", "pg_x", "mypg_2", "pg_2_old", "repmgr_slot_7"} {
		_, ok := SlotOrdinal("pg", slot)
		assert.False(t, ok, slot)
	}
	o, ok := SlotOrdinal("my-db", "my_db_1")
	assert.True(t, ok)
	assert.Equal(t, 1, o)
}

func TestTraps(t *testing.T) {
	gib := int64(1 << 30)
	primary := plugins.Member{Pod: "pg-0", Role: plugins.RolePrimary, Details: map[string]string{"connectedReplicas": "0"},
		Slots: []plugins.Slot{
			{Name: "pg_1", Type: "physical", Active: false, RetainedBytes: plugins.Int64(1 << 20), WALStatus: "reserved"},
			{Name: "standby_pg_2", Type: "physical", RetainedBytes: plugins.Int64(470 << 20), WALStatus: "reserved"},
			{Name: "backup_keep", Type: "physical", RetainedBytes: plugins.Int64(gib), WALStatus: "extended"},
			{Name: "small_keep", Type: "physical", RetainedBytes: plugins.Int64(1 << 20), WALStatus: "reserved"},
			{Name: "cdc", Type: "logical", RetainedBytes: plugins.Int64(gib), WALStatus: "lost"},
		}}
	replica := plugins.Member{Pod: "pg-1", Ordinal: 1, Role: plugins.RoleReplica, State: "stopped",
		LagBytes: plugins.Int64(55 << 20), Details: map[string]string{"replayPaused": "true", "slot": "pg_1"}}
	traps := New().Traps([]plugins.Member{primary, replica}, plugins.TrapOptions{StatefulSet: "pg", Replicas: 2})
	got := map[string]plugins.Trap{}
	for _, tr := range traps {
		got[tr.Code+" "+tr.Object] = tr
	}
	assert.Len(t, traps, 6, "%+v", traps)
	assert.True(t, got["ReplicationBroken pod/pg-1"].Broken)
	assert.Contains(t, got["ReplicationBroken pod/pg-1"].Message, "replica pg-1 is not streaming from the primary (WAL receiver: stopped)")
	assert.Contains(t, got["ReplayPaused pod/pg-1"].Message, "replica pg-1 has WAL replay paused, 55.0MiB behind")
	assert.Contains(t, got["NoReplicasConnected pod/pg-0"].Message, "primary pg-0 has no replica connected although 1 replica exists")
	assert.Contains(t, got["LeftoverSlot slot/standby_pg_2"].Message, "inactive and named for ordinal 2, which is not a member, retaining 470.0MiB of WAL")
	assert.False(t, got["LeftoverSlot slot/standby_pg_2"].Broken)
	assert.Contains(t, got["SlotRetainingWAL slot/backup_keep"].Message, "retaining 1.0GiB of WAL (over 256.0MiB)")
	assert.True(t, got["SlotWALLost slot/cdc"].Broken)
	assert.NotContains(t, got, "LeftoverSlot slot/pg_1", "ordinal 1 is a member")
	assert.NotContains(t, got, "SlotRetainingWAL slot/small_keep", "under the threshold")
}

func TestTrapsNameAnActiveSlotOfARemovedOrdinal(t *testing.T) {
	primary := plugins.Member{Pod: "pg-0", Role: plugins.RolePrimary, Details: map[string]string{"connectedReplicas": "1"},
		Slots: []plugins.Slot{
			{Name: "pg_1", Type: "physical", Active: true, RetainedBytes: plugins.Int64(1 << 20), WALStatus: "reserved"},
			{Name: "pg_3", Type: "logical", Active: true, WALStatus: "reserved"},
		}}
	traps := New().Traps([]plugins.Member{primary}, plugins.TrapOptions{StatefulSet: "pg", Namespace: "db", Replicas: 1})
	if assert.Len(t, traps, 1, "%+v", traps) {
		assert.Equal(t, plugins.TrapLeftoverSlot, traps[0].Code)
		assert.Equal(t, "slot/pg_1", traps[0].Object)
		assert.Equal(t, "replication slot pg_1 on pg-0 is named for ordinal 1, which is not a member, and is still active, retaining 1.0MiB of WAL: a server without a pod streams from it", traps[0].Message)
		assert.Contains(t, traps[0].Hint, "kubectl sts cleanup pg -n db")
	}
}
