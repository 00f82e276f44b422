package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultInterval is how often a Waiter re-evaluates its gates when no
// watch event arrives.
const DefaultInterval = 2 * time.Second

// Event reports a change in a gate's verdict or reason during a wait.
type Event struct {
	Time time.Time
	// Gate is the gate's name, e.g. "pod db-2 to be Ready at revision db-7c9f".
	Gate string
	// Object is the object the gate concerns, e.g. "pod db-2"; may be empty.
	Object  string
	Verdict Verdict
	// Reason is the gate's description of the current state, e.g.
	// "pod is Ready at revision db-7c9f".
	Reason string
}

// String renders the event as "<object>: <reason>".
func (e Event) String() string {
	if e.Object == "" {
		return e.Gate + ": " + e.Reason
	}
	return e.Object + ": " + e.Reason
}

// Observer receives progress events. It is called synchronously from the
// waiting goroutine and must return quickly.
type Observer func(Event)

// Waiter waits until gates pass. The zero value waits without a timeout,
// re-evaluates every DefaultInterval and reports nothing.
type Waiter struct {
	// Timeout bounds the wait; zero or negative means no timeout (the
	// context still applies).
	Timeout time.Duration
	// Interval is how often gates are re-evaluated in the absence of
	// changes, for gates that depend on outside state. Zero means
	// DefaultInterval; negative disables the periodic evaluation.
	Interval time.Duration
	// Observer, if set, receives an Event whenever a gate's verdict or reason
	// changes (and one for every gate at the first evaluation).
	Observer Observer
}

// WaitGates waits on tracker until all gates pass, with the given timeout
// (zero: none). See Waiter.Wait.
func WaitGates(ctx context.Context, tracker *Tracker, timeout time.Duration, gates ...Gate) error {
	return Waiter{Timeout: timeout}.Wait(ctx, tracker, gates...)
}

// Wait evaluates gates against the tracker's latest snapshot whenever it
// changes and on every Interval, until they all pass. It returns
//
//   - nil when all gates pass;
//   - a *GateFailedError when a gate fails;
//   - a *TimeoutError when Timeout or the deadline of ctx expires
//     (errors.Is(err, context.DeadlineExceeded) holds);
//   - an error wrapping context.Canceled (and describing what was being
//     waited for) when ctx is cancelled;
//   - a *StatefulSetDeletedError when the StatefulSet is deleted while gates
//     are pending;
//   - an error when a gate returns one, the tracker has not been started,
//     or the tracker's watches stopped.
//
// The tracker must have been started.
func (w Waiter) Wait(ctx context.Context, tracker *Tracker, gates ...Gate) error {
	return w.run(ctx, tracker, gates, time.Now())
}

// source is what a wait evaluates gates against.
type source interface {
	// latest returns the current snapshot and a channel closed on the next
	// change.
	latest() (Snapshot, <-chan struct{}, error)
	// stopped is closed when the source can no longer change.
	stopped() <-chan struct{}
	// vanished returns an error if the wait can no longer succeed because
	// the tracked object is gone (only consulted while gates are pending);
	// waitingFor describes the pending gates.
	vanished(s Snapshot, waitingFor func() string) error
	// watchError returns the most recent watch error and when it
	// happened (nil if none).
	watchError() (time.Time, error)
	describe() string
}

type gateResult struct {
	verdict Verdict
	reason  string
	done    bool // evaluated at least once
}

// run waits on src; the timeout counts from start.
func (w Waiter) run(ctx context.Context, src source, gates []Gate, start time.Time) error {
	gates = flatten(gates)
	if len(gates) == 0 {
		return errors.New("wait: no gates given")
	}

	waitCtx := ctx
	timeoutCause := errors.New("wait timeout")
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithDeadlineCause(ctx, start.Add(w.Timeout), timeoutCause)
		defer cancel()
	}

	interval := w.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}

	ev := newEvaluation(gates)
	results := ev.results
	emit := w.emit
	var wake *time.Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()

	for {
		snap, changed, err := src.latest()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", joinNames(gates, " and "), err)
		}

		i, err := ev.update(waitCtx, snap, emit)
		if err != nil {
			if waitCtx.Err() != nil {
				return w.endError(ctx, waitCtx, timeoutCause, start, gates, results, src)
			}
			return fmt.Errorf("checking %s: %w", gates[i].Name(), err)
		}
		if i >= 0 {
			g := gates[i]
			return &GateFailedError{Gate: g.Name(), Object: gateObject(g), Reason: results[i].reason}
		}
		if ev.pending == 0 {
			return nil
		}
		if err := src.vanished(snap, func() string { return pendingNames(gates, results) }); err != nil {
			return err
		}

		var wakeC <-chan time.Time
		if next := ev.nextCheck(); !next.IsZero() {
			if wake == nil {
				wake = time.NewTimer(time.Until(next))
			} else {
				wake.Reset(time.Until(next))
			}
			wakeC = wake.C
		}

		select {
		case <-changed:
		case <-tick:
		case <-wakeC:
		case <-waitCtx.Done():
			return w.endError(ctx, waitCtx, timeoutCause, start, gates, results, src)
		case <-src.stopped():
			if waitCtx.Err() != nil {
				return w.endError(ctx, waitCtx, timeoutCause, start, gates, results, src)
			}
			return fmt.Errorf("waiting for %s: watches of %s stopped", pendingNames(gates, results), src.describe())
		}
	}
}

func (w Waiter) emit(g Gate, v Verdict, reason string) {
	if w.Observer == nil {
		return
	}
	w.Observer(Event{Time: time.Now(), Gate: g.Name(), Object: gateObject(g), Verdict: v, Reason: reason})
}

// endError builds the error for a wait that ended because its own timeout,
// the parent's deadline or the parent's cancellation.
func (w Waiter) endError(parent, waitCtx context.Context, timeoutCause error, start time.Time, gates []Gate, results []gateResult, src source) error {
	pending := pendingGates(gates, results)
	object := joinObjects(pending)
	waitingFor := joinNames(pending, " and ")
	lastState := describePending(pending, gates, results)
	// A watch error during the wait may explain a stale state; the
	// reflector keeps retrying, so it is reported, not returned.
	if at, err := src.watchError(); err != nil && !at.Before(start) {
		lastState += fmt.Sprintf(" (last watch error %s ago: %v)", roundDuration(time.Since(at)), err)
	}

	if perr := parent.Err(); perr != nil && !errors.Is(perr, context.DeadlineExceeded) {
		return fmt.Errorf("waiting for %s (last state: %s): %w", waitingFor, lastState, perr)
	}
	timeout := w.Timeout
	if context.Cause(waitCtx) != timeoutCause {
		// The parent's deadline expired before our own timeout.
		if dl, ok := parent.Deadline(); ok {
			timeout = roundDuration(dl.Sub(start))
		} else {
			timeout = roundDuration(time.Since(start))
		}
	}
	return &TimeoutError{Object: object, WaitingFor: waitingFor, LastState: lastState, Timeout: timeout}
}

// pendingGates returns the gates whose last verdict was not Pass (all gates
// if none was evaluated).
func pendingGates(gates []Gate, results []gateResult) []Gate {
	var out []Gate
	for i, g := range gates {
		if !results[i].done || results[i].verdict != Pass {
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return gates
	}
	return out
}

func pendingNames(gates []Gate, results []gateResult) string {
	return joinNames(pendingGates(gates, results), " and ")
}

func describePending(pending, gates []Gate, results []gateResult) string {
	reasonOf := func(g Gate) (string, bool) {
		for i := range gates {
			if gates[i] == g && results[i].done {
				return results[i].reason, true
			}
		}
		return "", false
	}
	if len(pending) == 1 {
		if r, ok := reasonOf(pending[0]); ok {
			return r
		}
		return "no state observed"
	}
	parts := make([]string, 0, len(pending))
	for _, g := range pending {
		r, ok := reasonOf(g)
		if !ok {
			r = "no state observed"
		}
		parts = append(parts, labelled(g, r))
	}
	return strings.Join(parts, "; ")
}

// TimeoutError is returned when a wait's timeout (or its context's deadline)
// expires before the gates pass. errors.Is(err, context.DeadlineExceeded)
// holds for it; it never matches context.Canceled.
type TimeoutError struct {
	// Object names the object(s) still pending, e.g. "pod db-2".
	Object string
	// WaitingFor is the full description of what was pending, including
	// the object, e.g. "pod db-2 to be Ready at revision db-7c9f".
	WaitingFor string
	// LastState is the last observed state, e.g. "pod is Running, not Ready
	// (containers not ready: postgres)".
	LastState string
	Timeout   time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s waiting for %s: %s", e.Timeout, e.WaitingFor, e.LastState)
}

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// GateFailedError is returned when a gate fails.
type GateFailedError struct {
	// Gate is the failed gate's name, e.g. "pods db-0, db-1 to stay Ready for 5m0s".
	Gate string
	// Object is the object the gate concerns, if it names one.
	Object string
	// Reason says why, e.g. "pod db-1 restarted during the soak (restarts 3 -> 4)".
	Reason string
}

func (e *GateFailedError) Error() string {
	return fmt.Sprintf("failed waiting for %s: %s", e.Gate, e.Reason)
}

// Sleep waits d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
