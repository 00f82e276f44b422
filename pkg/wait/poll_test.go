package wait

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPollReportsAndTimesOutLikeAnyWait(t *testing.T) {
	var events []Event
	checks := 0
	g := NewGate("slot s1 on db-0", "to be dropped", func(context.Context, Snapshot) (Verdict, string, error) {
		checks++
		return NotYet, "active by pid 7", nil
	})
	w := Waiter{Timeout: 60 * time.Millisecond, Interval: 5 * time.Millisecond, Observer: func(e Event) { events = append(events, e) }}
	err := w.Poll(context.Background(), g)
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "slot s1 on db-0", te.Object)
	assert.Equal(t, "active by pid 7", te.LastState)
	assert.Greater(t, checks, 2, "re-evaluated on the interval")
	require.Len(t, events, 1, "one event per change of state")
	assert.Equal(t, "slot s1 on db-0: active by pid 7", events[0].String())
}

func TestPollPassesAndStopsOnAGateError(t *testing.T) {
	n := 0
	w := Waiter{Timeout: safety, Interval: time.Millisecond}
	require.NoError(t, w.Poll(context.Background(), NewGate("x", "to pass", func(context.Context, Snapshot) (Verdict, string, error) {
		if n++; n < 3 {
			return NotYet, "not yet", nil
		}
		return Pass, "done", nil
	})))
	boom := errors.New("boom")
	err := w.Poll(context.Background(), NewGate("x", "to pass", func(context.Context, Snapshot) (Verdict, string, error) {
		return Fail, "", boom
	}))
	assert.ErrorIs(t, err, boom)
}

func TestWatchWarningsKeepsTheFirstNewFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := func(name, reason string, count int32) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS}, Type: corev1.EventTypeWarning,
			Reason: reason, Count: count, InvolvedObject: corev1.ObjectReference{UID: "pvc-uid"}}
	}
	c := fake.NewClientset(ev("old", "VolumeResizeFailed", 1))
	w, err := WatchWarnings(ctx, c, testNS, "pvc-uid", "VolumeResizeFailed")
	require.NoError(t, err)
	assert.Nil(t, w.First(), "an event from before the watch is history")

	_, err = c.CoreV1().Events(testNS).Create(ctx, ev("other", "SomethingElse", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.CoreV1().Events(testNS).Update(ctx, ev("old", "VolumeResizeFailed", 2), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.First() != nil }, safety, time.Millisecond, "a repeated failure counts")
	assert.Equal(t, "old", w.First().Name)
	assert.Nil(t, (*Warnings)(nil).First())
}
