package journal

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// store answers configmap reads and writes as the API server does: an
// update must carry the stored resourceVersion, a create must not find the
// object. lose makes the next n writes apply while their caller hears an
// error, as when the response is lost on the way back.
type store struct {
	mu   sync.Mutex
	cm   *corev1.ConfigMap
	rv   int
	lose int
	// answer is the error a lost write returns to its caller.
	answer error
	writes int
}

var cmResource = schema.GroupResource{Resource: "configmaps"}

func newStore() (*fake.Clientset, *store) {
	cs := fake.NewClientset()
	s := &store{answer: errors.New("read tcp: connection reset by peer")}
	cs.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch a.GetVerb() {
		case "get":
			if s.cm == nil {
				return true, nil, apierrors.NewNotFound(cmResource, a.(k8stesting.GetAction).GetName())
			}
			return true, s.cm.DeepCopy(), nil
		case "delete":
			s.cm = nil
			return true, nil, nil
		case "create", "update":
			in := a.(interface{ GetObject() runtime.Object }).GetObject().(*corev1.ConfigMap).DeepCopy()
			if a.GetVerb() == "create" && s.cm != nil {
				return true, nil, apierrors.NewAlreadyExists(cmResource, in.Name)
			}
			if a.GetVerb() == "update" && (s.cm == nil || in.ResourceVersion != s.cm.ResourceVersion) {
				return true, nil, apierrors.NewConflict(cmResource, in.Name, errors.New("the object has been modified"))
			}
			s.rv++
			s.writes++
			in.ResourceVersion = strconv.Itoa(s.rv)
			s.cm = in
			if s.lose > 0 {
				s.lose--
				return true, nil, s.answer
			}
			return true, in.DeepCopy(), nil
		}
		return false, nil, nil
	})
	return cs, s
}

// storePair is two processes' journals of one record on the store, with
// a clock the test moves.
func storePair() (a, b *Journal, s *store, clk *clock) {
	cs, s := newStore()
	clk = &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	a = New(cs, "ns", "db", "host-a/1").WithClock(clk.now, 30*time.Second)
	b = New(cs, "ns", "db", "host-b/2").WithClock(clk.now, 30*time.Second)
	return a, b, s, clk
}

func (s *store) loseNext(n int, answer error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose = n
	if answer != nil {
		s.answer = answer
	}
}

// A heartbeat whose response was lost has still renewed the lease: the
// holder keeps it, its next writes succeed, and nobody else can take over.
func TestLostHeartbeatResponseKeepsTheLease(t *testing.T) {
	ctx := context.Background()
	a, b, s, clk := storePair()

	rec, _, err := a.Begin(ctx, "rollout", state{Step: 0})
	require.NoError(t, err)

	clk.t = clk.t.Add(10 * time.Second)
	s.loseNext(1, nil)
	assert.Error(t, a.Heartbeat(ctx, rec), "the caller heard no answer")

	clk.t = clk.t.Add(10 * time.Second)
	require.NoError(t, a.Heartbeat(ctx, rec), "the next renewal recognises the lost write as its own")
	require.NoError(t, a.Save(ctx, rec, state{Step: 1}, "step 1 done"))

	clk.t = clk.t.Add(25 * time.Second)
	_, _, err = b.Begin(ctx, "rollout", state{})
	var held *HeldError
	require.ErrorAs(t, err, &held, "the lease was renewed 25s ago: nobody else may act")
	assert.Equal(t, "host-a/1", held.Holder)

	loaded, err := a.Load(ctx)
	require.NoError(t, err)
	var st state
	require.NoError(t, loaded.DecodeState(&st))
	assert.Equal(t, 1, st.Step)
}

// A step save whose response was lost, retried by the client, meets its own
// write as a conflict: that is success, and releasing afterwards works.
func TestRetriedSaveMeetingItsOwnWriteSucceeds(t *testing.T) {
	ctx := context.Background()
	a, b, s, _ := storePair()

	rec, _, err := a.Begin(ctx, "rollout", state{Step: 0})
	require.NoError(t, err)
	// The write applies; the retry of the same request then finds the
	// resourceVersion moved on by that very write.
	s.loseNext(1, apierrors.NewConflict(cmResource, ConfigMapName("db"), errors.New("the object has been modified")))
	require.NoError(t, a.Save(ctx, rec, state{Step: 2}, "step 2 done"))
	assert.Equal(t, 2, s.writes, "the save applied once, and was not written twice")

	require.NoError(t, a.Release(ctx, rec, "interrupted"))
	_, resumed, err := b.Begin(ctx, "rollout", state{})
	require.NoError(t, err, "a released lease is free at once")
	assert.True(t, resumed)
}

// A create whose response was lost is found on the retry as AlreadyExists:
// the record is the run's own.
func TestLostCreateResponseIsAdopted(t *testing.T) {
	ctx := context.Background()
	cs, s := newStore()
	a := New(cs, "ns", "db", "host-a/1")
	s.loseNext(1, apierrors.NewAlreadyExists(cmResource, ConfigMapName("db")))
	rec, resumed, err := a.Begin(ctx, "rollout", state{Step: 3})
	require.NoError(t, err)
	assert.False(t, resumed)
	require.NoError(t, a.Save(ctx, rec, state{Step: 4}, ""))
}

// Someone else's write is never adopted: the holder learns it lost the lease.
func TestForeignWriteIsAConflict(t *testing.T) {
	ctx := context.Background()
	a, b, _, clk := storePair()
	rec, _, err := a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	clk.t = clk.t.Add(31 * time.Second)
	_, resumed, err := b.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	require.True(t, resumed)

	err = a.Save(ctx, rec, state{Step: 1}, "")
	var lost *LeaseLostError
	require.ErrorAs(t, err, &lost)
	assert.Equal(t, "host-b/2", lost.Holder)
}

// A run whose renewals all fail stops acting before its lease can lapse:
// the context of its actions ends with a *LeaseLostError.
func TestUnrenewableLeaseStopsTheRunBeforeItLapses(t *testing.T) {
	ctx := context.Background()
	cs, s := newStore()
	// Long enough that a loaded machine's scheduling delays stay far
	// below the margin between the fence and the lease's end.
	const lease = 2 * time.Second
	a := New(cs, "ns", "db", "host-a/1").WithClock(time.Now, lease)
	rec, _, err := a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)

	s.mu.Lock()
	s.lose = 1 << 30 // every write from now on goes unanswered
	s.answer = apierrors.NewServiceUnavailable("etcd leader changed")
	s.mu.Unlock()
	start := time.Now()
	var warnings int
	var wmu sync.Mutex
	held, done := a.Hold(ctx, rec, func(error) { wmu.Lock(); warnings++; wmu.Unlock() })
	<-held.Done()
	stopped := time.Since(start)
	err = done(held.Err())
	var lost *LeaseLostError
	require.ErrorAs(t, err, &lost)
	assert.Empty(t, lost.Holder)
	assert.True(t, apierrors.IsServiceUnavailable(lost.Err), "the last renewal failure is named: %v", lost.Err)
	assert.Less(t, stopped, lease, "the run stops before anyone else may take over")
	assert.GreaterOrEqual(t, stopped, lease/2)
	wmu.Lock()
	assert.Positive(t, warnings)
	wmu.Unlock()
}

// A takeover by another process stops the old holder at its next renewal.
func TestTakeOverStopsTheOldHolder(t *testing.T) {
	ctx := context.Background()
	cs, _ := newStore()
	const lease = 2 * time.Second
	a := New(cs, "ns", "db", "host-a/1").WithClock(time.Now, lease)
	b := New(cs, "ns", "db", "host-b/2").WithClock(time.Now, lease).WithTakeOver(true)
	rec, _, err := a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	held, done := a.Hold(ctx, rec, nil)

	start := time.Now()
	rec2, resumed, err := b.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	assert.True(t, resumed)
	assert.Equal(t, "host-b/2", rec2.Holder)
	require.Error(t, held.Err(), "the old holder stopped before the new one returned from Begin")
	assert.GreaterOrEqual(t, time.Since(start), lease/2, "the new holder waited for the old lease to lapse")
	var lost *LeaseLostError
	require.ErrorAs(t, done(held.Err()), &lost, "the run's stop is explained by the takeover")
	assert.Equal(t, "host-b/2", lost.Holder)
}

// A refusal names the holder, its heartbeat and when its lease expires.
func TestHeldErrorNamesHeartbeatAndExpiry(t *testing.T) {
	ctx := context.Background()
	a, b, clk := newPair(t)
	_, _, err := a.Begin(ctx, "rollout", state{})
	require.NoError(t, err)
	clk.t = clk.t.Add(12 * time.Second)
	_, _, err = b.Begin(ctx, "rollout", state{})
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, 12*time.Second, held.Age())
	assert.Equal(t, "2026-03-01T10:00:30Z", stamp(held.Expires))
	msg := err.Error()
	for _, want := range []string{"host-a/1", "last heartbeat 12s ago at 2026-03-01T10:00:00Z", "expires at 2026-03-01T10:00:30Z, in 18s", "--take-over", "wait for it"} {
		assert.Contains(t, msg, want)
	}
}

func TestHeldIsTheOneLivenessRule(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	j := New(fake.NewClientset(), "ns", "db", "me/1").WithClock(func() time.Time { return now }, DefaultLeaseDuration)
	rec := &Record{Operation: "expand-pvc", Phase: Running, Holder: "h/1", Heartbeat: now.Add(-10 * time.Second)}
	assert.NotNil(t, j.Held(rec))
	rec.Heartbeat = now.Add(-DefaultLeaseDuration)
	assert.Nil(t, j.Held(rec), "an expired lease is free")
	rec.Heartbeat, rec.Holder = now, ""
	assert.Nil(t, j.Held(rec), "a released lease is free")
	rec.Holder = "me/1"
	assert.Nil(t, j.Held(rec), "a run's own lease does not refuse it")
	rec.Holder, rec.Phase = "h/1", Succeeded
	assert.Nil(t, j.Held(rec), "a finished operation holds nothing")
	assert.Nil(t, j.Held(nil))
}
