package wait

import (
	"context"
	"time"
)

// Poll waits until gate passes for state that no watch can follow (a
// database's view, a command's answer): it evaluates gate at once and then
// every Interval, with the Waiter's Timeout and Observer, so such a wait
// times out, fails and reports exactly like a wait on the cluster. The
// snapshot handed to gate is empty.
func (w Waiter) Poll(ctx context.Context, gate Gate) error {
	return w.run(ctx, pollSource{}, []Gate{gate}, time.Now())
}

// pollSource never changes: a polled gate is re-evaluated on the Waiter's
// interval only.
type pollSource struct{}

func (pollSource) latest() (Snapshot, <-chan struct{}, error) { return Snapshot{}, nil, nil }

func (pollSource) stopped() <-chan struct{} { return nil }

func (pollSource) vanished(Snapshot, func() string) error { return nil }

func (pollSource) watchError() (time.Time, error) { return time.Time{}, nil }

func (pollSource) describe() string { return "poll" }
