package wait

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Verdict is a gate's answer for one snapshot.
type Verdict int

const (
	// NotYet means the condition does not hold yet but still can.
	NotYet Verdict = iota
	// Pass means the condition holds.
	Pass
	// Fail means the condition can no longer hold; the wait ends with a
	// *GateFailedError.
	Fail
)

func (v Verdict) String() string {
	switch v {
	case NotYet:
		return "NotYet"
	case Pass:
		return "Pass"
	case Fail:
		return "Fail"
	default:
		return fmt.Sprintf("Verdict(%d)", int(v))
	}
}

// Gate is one condition a wait checks. Check is called with the latest
// snapshot whenever it changes and on every tick of the Waiter, always from
// the waiting goroutine (never concurrently for one wait). The returned
// reason describes the current state in a few words ("pod is Pending
// (Unschedulable)"); it becomes the LastState of a timeout, the Reason of a
// failure, and is reported to the Observer. A non-nil error aborts the wait;
// gates that consult outside state should report transient problems as
// NotYet with a reason instead.
//
// Gates may keep state between calls (Soak does); such gates are meant for a
// single wait.
type Gate interface {
	// Name describes what is waited for, including the object, e.g.
	// "pod db-2 to be Ready at revision db-7c9f".
	Name() string
	Check(ctx context.Context, s Snapshot) (Verdict, string, error)
}

// ObjectGate is implemented by gates that concern one object (or a fixed set
// of objects); Object names it, e.g. "pod db-2". It is used for the Object
// field of errors and events.
type ObjectGate interface {
	Gate
	Object() string
}

// TimedGate is implemented by gates whose verdict can change with the passage
// of time alone (like Soak). NextCheck returns when the gate next wants to be
// evaluated even if nothing changes; the zero time means no such need.
type TimedGate interface {
	Gate
	NextCheck() time.Time
}

// CheckFunc is the signature of Gate.Check.
type CheckFunc func(ctx context.Context, s Snapshot) (Verdict, string, error)

// NewGate returns a gate named "<object> <condition>" (object may be empty)
// that calls check. It is the way to add workflow-specific gates, for
// example one that runs a health command in a pod; such a gate is
// re-evaluated on every tick of the Waiter.
func NewGate(object, condition string, check CheckFunc) Gate {
	return &funcGate{object: object, condition: condition, check: check}
}

type funcGate struct {
	object, condition string
	check             CheckFunc
}

func (g *funcGate) Name() string {
	if g.object == "" {
		return g.condition
	}
	return g.object + " " + g.condition
}

func (g *funcGate) Object() string { return g.object }

func (g *funcGate) Check(ctx context.Context, s Snapshot) (Verdict, string, error) {
	return g.check(ctx, s)
}

// gateObject returns the gate's object, or "" if it does not name one.
func gateObject(g Gate) string {
	if og, ok := g.(ObjectGate); ok {
		return og.Object()
	}
	return ""
}

// All returns a gate that passes when all gates pass (in the same snapshot)
// and fails as soon as one fails. Waits flatten a top-level All so that
// errors name the individual gate.
func All(gates ...Gate) Gate { return &allGate{gates: gates} }

type allGate struct{ gates []Gate }

func (g *allGate) Name() string { return joinNames(g.gates, " and ") }

func (g *allGate) Object() string { return joinObjects(g.gates) }

func (g *allGate) NextCheck() time.Time { return nextCheck(g.gates) }

func (g *allGate) Check(ctx context.Context, s Snapshot) (Verdict, string, error) {
	var pending []string
	for _, sub := range g.gates {
		v, reason, err := sub.Check(ctx, s)
		if err != nil {
			return NotYet, "", fmt.Errorf("%s: %w", sub.Name(), err)
		}
		switch v {
		case Fail:
			return Fail, labelled(sub, reason), nil
		case NotYet:
			pending = append(pending, labelled(sub, reason))
		}
	}
	if len(pending) > 0 {
		return NotYet, strings.Join(pending, "; "), nil
	}
	return Pass, "all conditions met", nil
}

// Any returns a gate that passes as soon as one of gates passes, and fails
// when all of them have failed.
func Any(gates ...Gate) Gate { return &anyGate{gates: gates} }

type anyGate struct{ gates []Gate }

func (g *anyGate) Name() string { return joinNames(g.gates, " or ") }

func (g *anyGate) Object() string { return joinObjects(g.gates) }

func (g *anyGate) NextCheck() time.Time { return nextCheck(g.gates) }

func (g *anyGate) Check(ctx context.Context, s Snapshot) (Verdict, string, error) {
	var reasons []string
	failed := 0
	for _, sub := range g.gates {
		v, reason, err := sub.Check(ctx, s)
		if err != nil {
			return NotYet, "", fmt.Errorf("%s: %w", sub.Name(), err)
		}
		if v == Pass {
			return Pass, labelled(sub, reason), nil
		}
		if v == Fail {
			failed++
		}
		reasons = append(reasons, labelled(sub, reason))
	}
	if failed == len(g.gates) {
		return Fail, strings.Join(reasons, "; "), nil
	}
	return NotYet, strings.Join(reasons, "; "), nil
}

// labelled prefixes a reason with the gate's object (or name) so that
// combined reasons stay readable.
func labelled(g Gate, reason string) string {
	label := gateObject(g)
	if label == "" {
		label = g.Name()
	}
	if reason == "" {
		return label
	}
	return label + ": " + reason
}

func joinNames(gates []Gate, sep string) string {
	names := make([]string, len(gates))
	for i, g := range gates {
		names[i] = g.Name()
	}
	return strings.Join(names, sep)
}

func joinObjects(gates []Gate) string {
	var objs []string
	seen := map[string]bool{}
	for _, g := range gates {
		o := gateObject(g)
		if o == "" || seen[o] {
			continue
		}
		seen[o] = true
		objs = append(objs, o)
	}
	return strings.Join(objs, ", ")
}

func nextCheck(gates []Gate) time.Time {
	var next time.Time
	for _, g := range gates {
		tg, ok := g.(TimedGate)
		if !ok {
			continue
		}
		if t := tg.NextCheck(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// flatten expands top-level All gates so that a wait reports which
// individual gate is pending or failed.
func flatten(gates []Gate) []Gate {
	var out []Gate
	for _, g := range gates {
		if a, ok := g.(*allGate); ok {
			out = append(out, flatten(a.gates)...)
			continue
		}
		out = append(out, g)
	}
	return out
}
