package journal

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

type state struct {
	Step int `json:"step"`
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newPair(t *testing.T) (*Journal, *Journal, *clock) {
	t.Helper()
	cs := fake.NewClientset()
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	a := New(cs, "ns", "db", "host-a/1").WithClock(c.now, 30*time.Second)
	b := New(cs, "ns", "db", "host-b/2").WithClock(c.now, 30*time.Second)
	return a, b, c
}

func TestBeginNewThenResumeKeepsState(t *testing.T) {
	ctx := context.Background()
	a, b, clk := newPair(t)

	rec, resumed, err := a.Begin(ctx, "rollout", state{Step: 0})
	require.NoError(t, err)
	assert.False(t, resumed)
	require.NoError(t, a.Save(ctx, rec, state{Step: 2}, "step 2 done"))

	// A live lease refuses a second run.
	_, _, err = b.Begin(ctx, "rollout", state{})
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "host-a/1", held.Holder)

	// Once the lease expires the other process resumes with the saved step.
	clk.t = clk.t.Add(31 * time.Second)
	rec2, resumed, err := b.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	assert.True(t, resumed)
	var st state
	require.NoError(t, rec2.DecodeState(&st))
	assert.Equal(t, 2, st.Step)
	assert.Equal(t, "host-b/2", rec2.Holder)
}

func TestReleasedLeaseResumesAtOnce(t *testing.T) {
	ctx := context.Background()
	a, b, _ := newPair(t)
	rec, _, err := a.Begin(ctx, "expand-pvc", state{Step: 1})
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx, rec, "interrupted"))

	_, resumed, err := b.Begin(ctx, "expand-pvc", state{})
	require.NoError(t, err)
	assert.True(t, resumed)
}

func TestOtherOperationIsRefusedUntilFinished(t *testing.T) {
	ctx := context.Background()
	a, b, _ := newPair(t)
	rec, _, err := a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	require.NoError(t, a.Finish(ctx, rec, Paused, "paused after step 1"))

	_, _, err = b.Begin(ctx, "scale-down", state{})
	var busy *BusyError
	require.ErrorAs(t, err, &busy)
	assert.Equal(t, "rollout", busy.Operation)
	assert.Contains(t, err.Error(), "continue it with: kubectl sts rollout resume db")

	// A finished operation does not block a new one, and the new one starts fresh.
	loaded, err := a.Load(ctx)
	require.NoError(t, err)
	require.NoError(t, a.Finish(ctx, loaded, Succeeded, "done"))
	rec3, resumed, err := b.Begin(ctx, "scale-down", state{Step: 7})
	require.NoError(t, err)
	assert.False(t, resumed)
	var st state
	require.NoError(t, rec3.DecodeState(&st))
	assert.Equal(t, 7, st.Step)
	assert.Len(t, rec3.History, 1)
}

func TestLoadMissingAndDelete(t *testing.T) {
	ctx := context.Background()
	a, _, _ := newPair(t)
	rec, err := a.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, rec)
	assert.NoError(t, a.Delete(ctx), "deleting a missing record is fine")

	_, _, err = a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	require.NoError(t, a.Delete(ctx))
	rec, err = a.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, rec)
}

// A run that saves more often than a heartbeat is due sends no heartbeat of
// its own: its saves renew the lease. Once it stops saving, heartbeats
// resume.
func TestSavesStandInForHeartbeats(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	var mu sync.Mutex
	updates := 0
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		updates++
		mu.Unlock()
		return false, nil, nil
	})
	// A heartbeat is due every 2s without a save.
	j := New(cs, "ns", "db", "h/1").WithClock(time.Now, 6*time.Second)
	rec, _, err := j.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	held, done := j.Hold(ctx, rec, func(err error) { t.Errorf("renewal failed: %v", err) })
	saves := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); saves++ {
		require.NoError(t, j.Save(ctx, rec, state{Step: saves}, ""))
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	assert.Equal(t, saves, updates, "every write was a save: no heartbeat while the saves renewed the lease")
	mu.Unlock()
	last := rec.Heartbeat
	require.Eventually(t, func() bool {
		loaded, err := j.Load(ctx)
		return err == nil && loaded.Heartbeat.After(last)
	}, 5*time.Second, 10*time.Millisecond, "a heartbeat once the saves stopped")
	assert.NoError(t, held.Err())
	assert.NoError(t, done(nil))
}

func TestKeepAliveRenewsHeartbeat(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	j := New(cs, "ns", "db", "h/1").WithClock(time.Now, 2*time.Second)
	rec, _, err := j.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	first := rec.Heartbeat
	held, done := j.Hold(ctx, rec, func(err error) { t.Errorf("renewal failed: %v", err) })
	require.Eventually(t, func() bool {
		loaded, err := j.Load(ctx)
		return err == nil && loaded.Heartbeat.After(first)
	}, 5*time.Second, 5*time.Millisecond)
	// Renewals keep the run's context alive well past the lease.
	time.Sleep(4 * time.Second)
	assert.NoError(t, held.Err())
	assert.NoError(t, done(nil))
}

// The refusal of another operation says how to go on with the recorded
// one: its own commands, or to wait while a process holds its lease.
func TestBusyErrorNamesTheWayOn(t *testing.T) {
	ctx := context.Background()

	t.Run("a paused rollout: resume or undo", func(t *testing.T) {
		a, b, _ := newPair(t)
		rec, _, err := a.Begin(ctx, "rollout", state{})
		require.NoError(t, err)
		require.NoError(t, a.Finish(ctx, rec, Paused, "paused after step 1"))
		_, _, err = b.Begin(ctx, "scale-down", state{})
		var busy *BusyError
		require.ErrorAs(t, err, &busy)
		assert.Contains(t, err.Error(), "an unfinished rollout (Paused, started 2026-03-01T10:00:00Z) is recorded")
		assert.Contains(t, err.Error(), "continue it with: kubectl sts rollout resume db, undo it with: kubectl sts rollout undo db")
	})

	t.Run("a live run: who holds it and until when", func(t *testing.T) {
		a, b, c := newPair(t)
		_, _, err := a.Begin(ctx, "expand-pvc", state{})
		require.NoError(t, err)
		c.t = c.t.Add(10 * time.Second)
		_, _, err = b.Begin(ctx, "rollout", state{})
		var busy *BusyError
		require.ErrorAs(t, err, &busy)
		assert.Contains(t, err.Error(), "host-a/1 is running it (last heartbeat 10s ago; its lease expires at 2026-03-01T10:00:30Z): "+
			"wait for it to finish; if it was stopped or killed, after its lease expires run the same kubectl sts expand-pvc db again to finish it")
	})

	t.Run("a scale-down stopped part-way: run it again", func(t *testing.T) {
		a, b, _ := newPair(t)
		rec, _, err := a.Begin(ctx, "scale-down", state{})
		require.NoError(t, err)
		require.NoError(t, a.Release(ctx, rec, "interrupted"))
		_, _, err = b.Begin(ctx, "expand-pvc", state{})
		var busy *BusyError
		require.ErrorAs(t, err, &busy)
		assert.Contains(t, err.Error(), "run the same kubectl sts scale-down db again to finish it")
	})
}

// TestBusyErrorNamesTheCommands: the refusal of a second operation says
// which commands finish or drop the unfinished one, for its StatefulSet.
func TestBusyErrorNamesTheCommands(t *testing.T) {
	started := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for op, want := range map[string][]string{
		"rollout":      {"kubectl sts rollout resume db", "kubectl sts rollout undo db", "kubectl sts rollout abort db"},
		"scale-down":   {"run the same kubectl sts scale-down db again", "kubectl sts scale-down db --abort"},
		"cleanup-pvcs": {"run the same kubectl sts cleanup db again", "kubectl sts cleanup db --abort"},
		"expand-pvc":   {"run the same kubectl sts expand-pvc db again"},
	} {
		err := &BusyError{Operation: op, Phase: Running, Started: started, StatefulSet: "db"}
		assert.Contains(t, err.Error(), "an unfinished "+op+" (Running, started 2026-01-02T15:04:05Z) is recorded for this StatefulSet", op)
		for _, w := range want {
			assert.Contains(t, err.Error(), w, op)
		}
	}
}

// TestBeginNamesTheStatefulSetOfTheUnfinishedOperation: the refusal Begin
// returns carries the StatefulSet, so its hint names the commands.
func TestBeginNamesTheStatefulSetOfTheUnfinishedOperation(t *testing.T) {
	ctx := context.Background()
	c := fake.NewSimpleClientset()
	a := New(c, "ns", "db", "a/1")
	_, _, err := a.Begin(ctx, "rollout", map[string]string{})
	require.NoError(t, err)
	_, _, err = New(c, "ns", "db", "b/1").Begin(ctx, "scale-down", map[string]string{})
	var busy *BusyError
	require.ErrorAs(t, err, &busy)
	assert.Contains(t, err.Error(), "kubectl sts rollout resume db")
}
