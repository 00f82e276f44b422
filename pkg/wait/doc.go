// Package wait is the single place where kubectl-sts waits on cluster state.
//
// A Tracker follows one StatefulSet and the pods it owns through a fixed
// number of watches (the StatefulSet by metadata.name, its pods by the
// StatefulSet's label selector, optionally its PVCs), independent of the
// replica count. Read, ReadFor and ReadAll read the same objects once, with
// the same ownership rules (OwnsPod, OwnsClaim): every command sees a
// StatefulSet's pods and claims the same way. Every change produces a new immutable Snapshot and wakes the
// waiters, so a pod turning Ready is noticed as soon as the watch event
// arrives.
//
// Waiting is expressed as Gates: a Gate looks at a Snapshot and answers Pass,
// Fail or NotYet with a human readable reason. Gates compose with All and
// Any. A Waiter re-evaluates its gates on every snapshot change and on a
// periodic tick (for gates that consult outside state, such as a command run
// in a pod), and returns:
//
//   - nil when all gates pass,
//   - a *GateFailedError when a gate fails,
//   - a *TimeoutError naming the object and its last observed state when the
//     wait's own timeout (or the parent context's deadline) expires,
//   - an error wrapping context.Canceled when the parent context is cancelled,
//   - a *StatefulSetDeletedError when the tracked StatefulSet disappears while
//     gates are still pending.
//
// Besides a StatefulSet, a Waiter waits on one claim (WaitPVC) or any one
// named object, typed or not (WaitObject, e.g. a VolumeSnapshot), through a
// watch of that object alone, and on state no watch can follow (Poll, e.g.
// a database's view of a replication slot) by re-evaluating a gate on its
// Interval. WatchWarnings follows an object's Warning events for gates
// that fail on them. All of them time out, fail and report alike.
//
// Gates only look at the latest snapshot, and intermediate states can be
// coalesced (bursts of events, relists after a watch expired). The built-in
// gates are written so that this never changes the answer: a replaced pod is
// detected by its UID, a restart by the restart counter, a readiness flap by
// the Ready condition's lastTransitionTime, and so on.
//
// The package never prints; progress is reported through an optional
// Observer.
package wait
