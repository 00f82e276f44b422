package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
)

// writeLog records, in order, the rollout's own writes: partition
// patches, journal writes and Events.
type writeLog struct {
	mu     sync.Mutex
	writes []string
	// onWrite, when set, is called with each write and may fail it.
	onWrite func(w string, n int) error
	events  *eventLog
}

func (l *writeLog) add(w string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, w)
	if l.onWrite != nil {
		return l.onWrite(w, len(l.writes))
	}
	return nil
}

func (l *writeLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.writes...)
}

func (l *writeLog) Event(ctx context.Context, obj *corev1.ObjectReference, typ, reason, msg string) error {
	if err := l.add("event"); err != nil {
		return err
	}
	return l.events.Event(ctx, obj, typ, reason, msg)
}

// logWrites puts a writeLog in front of the fake cluster and the runner.
func logWrites(c *fakeCluster, r *Runner) *writeLog {
	l := &writeLog{events: &c.events}
	c.ctrl.React("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var w string
		switch {
		case a.GetResource().Resource == "statefulsets" && a.GetVerb() == "patch" && a.GetSubresource() == "":
			w = "patch"
		case a.GetResource().Resource == "configmaps" && (a.GetVerb() == "update" || a.GetVerb() == "create"):
			w = "journal"
		default:
			return false, nil, nil
		}
		if err := l.add(w); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	r.Events = l
	return l
}

// steps splits the writes at the partition patches.
func splitAtPatches(writes []string) [][]string {
	var out [][]string
	for _, w := range writes {
		if w == "patch" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], w)
		}
	}
	return out
}

func TestBetweenStepsThePartitionPatchGoesFirstThenOneJournalWriteAndOneEvent(t *testing.T) {
	for _, paced := range []bool{true, false} {
		t.Run(fmt.Sprintf("controller-paced=%v", paced), func(t *testing.T) {
			c := setup(t, 4)
			c.applyPending("app:v2", 4)
			steps, err := ParseSteps([]string{"1,2,3,4"})
			require.NoError(t, err)
			r := c.runner("first", nil)
			req := Request{Steps: steps}
			if !paced {
				// A gate of its own holds each step until it passes.
				r.Local = &fakeRunner{}
				req.Gates.Command = "./gate.sh"
			}
			l := logWrites(c, r)
			pv, err := r.Prepare(ctxT(t), req)
			require.NoError(t, err)
			require.Equal(t, paced, pv.Pacing.ControllerPaced)
			require.NoError(t, r.Run(ctxT(t), pv))

			byStep := splitAtPatches(l.list())
			require.Len(t, byStep, 4, "one partition patch per step: %v", l.list())
			for i, s := range byStep[:3] {
				// The patch of step i+1 (once step i's gates pass, or once
				// the controller began step i when controller-paced), then
				// the journal write and the Event recording both steps.
				assert.Equal(t, []string{"patch", "journal", "event"}, s, "writes from the partition patch of step %d to the next", i+1)
			}
			_, st := record(t, c)
			for i, s := range st.Steps {
				assert.False(t, s.Started.IsZero(), "step %d start recorded", i+1)
				assert.False(t, s.Finished.IsZero(), "step %d end recorded", i+1)
				assert.Len(t, s.UIDs, 1, "step %d pods recorded", i+1)
			}
			assert.Equal(t, 4, count(c.events.list(), ReasonStepPassed), "kubectl describe still shows each step")
		})
	}
}

// A run killed after the next step's partition patch but before the
// journal write that records it resumes without redoing anything and
// without blaming anyone else for the lower partition.
func TestResumeAfterKillBetweenPartitionPatchAndJournalWrite(t *testing.T) {
	c := setup(t, 4)
	c.applyPending("app:v2", 4)
	steps, err := ParseSteps([]string{"1,2,3,4"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(ctxT(t))
	r := c.runner("first", nil)
	l := logWrites(c, r)
	patches := 0
	l.onWrite = func(w string, _ int) error {
		if w == "patch" {
			patches++
		}
		if w == "journal" && patches == 2 {
			cancel() // killed: this write and everything after it never happen
			return context.Canceled
		}
		return nil
	}
	pv, err := r.Prepare(ctx, Request{Steps: steps})
	require.NoError(t, err)
	require.ErrorIs(t, r.Run(ctx, pv), context.Canceled)
	l.onWrite = nil
	_, st := record(t, c)
	require.Equal(t, 0, st.Current, "the journal still says step 1")
	require.Equal(t, int32(2), Partition(c.sts("db")), "the partition of step 2 was patched")

	// Killed, the first run never released its lease: the next run takes
	// over once the lease has expired.
	later := func() time.Time { return time.Now().Add(time.Hour) }
	rec := &progress.Recorder{}
	r2 := c.runner("second", rec)
	r2.Now = later
	r2.Journal = r2.Journal.WithClock(later, journal.DefaultLeaseDuration)
	pv2, err := r2.Prepare(ctxT(t), Request{Steps: steps})
	require.NoError(t, err)
	require.NoError(t, r2.Run(ctxT(t), pv2))
	for _, e := range rec.Events() {
		assert.NotContains(t, e.Message, "released by someone else")
	}
	jr, _ := record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
	for n, rev := range podRevisions(c) {
		assert.Equal(t, pv.To, rev, n)
	}
	assert.True(t, strings.Contains(strings.Join(rec.Kinds(), " "), "step-passed"))
}

// A run reads the StatefulSet from its watch: clearing the control
// annotations at its start and end sends no GET, only the patch when an
// annotation is there to clear.
func TestRunReadsTheStatefulSetFromItsWatch(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	// The runner's own requests, counted on their way to the fake
	// cluster (whose simulated controller sends its own).
	var mu sync.Mutex
	gets, patches := 0, 0
	own := &fake.Clientset{}
	own.AddReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetResource().Resource == "statefulsets" {
			mu.Lock()
			switch a.GetVerb() {
			case "get":
				gets++
			case "patch":
				patches++
			}
			mu.Unlock()
		}
		obj, err := c.cs.Invokes(a, nil)
		return true, obj, err
	})
	own.AddWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := c.cs.InvokesWatch(a)
		return true, w, err
	})
	r.Client = own
	require.NoError(t, r.Run(ctxT(t), pv))
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, gets, "GETs of the statefulset during the run")
	assert.Equal(t, 3, patches, "one partition patch per step, nothing else")
}
