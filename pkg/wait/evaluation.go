package wait

import (
	"context"
	"time"
)

// PodGate is implemented by gates whose verdict and reason depend on
// nothing but the named pods of the snapshot: not on the StatefulSet, on
// claims, on the time or on anything outside the cluster. A wait checks such
// a gate again only when one of its pods changed, so that a change of one
// pod costs the same whatever the number of gates over other pods.
type PodGate interface {
	Gate
	Pods() []string
}

// evaluation is the state of the gates of one wait: each gate's last
// result, which gates a pod's change concerns, and how many gates are not
// passed yet. After the first full round it checks only the gates that can
// have changed: those of the pods changed since the last round, and the
// gates that are not pod gates.
type evaluation struct {
	gates   []Gate
	results []gateResult
	// byPod indexes the pod gates by pod name; others are the rest,
	// checked every round, and timed those among them with a NextCheck.
	byPod  map[string][]int
	others []int
	timed  []TimedGate
	// pending counts the gates whose last verdict is not Pass.
	pending int
	// seq is the Seq of the snapshot of the last round; full forces a
	// round over every gate.
	seq  uint64
	full bool
	// round numbers the rounds; checked[i] == round marks gate i done in
	// this round.
	round   uint64
	checked []uint64
}

func newEvaluation(gates []Gate) *evaluation {
	e := &evaluation{gates: gates, results: make([]gateResult, len(gates)), checked: make([]uint64, len(gates)),
		byPod: map[string][]int{}, pending: len(gates), full: true}
	for i, g := range gates {
		if pg, ok := g.(PodGate); ok {
			for _, p := range pg.Pods() {
				e.byPod[p] = append(e.byPod[p], i)
			}
			continue
		}
		e.others = append(e.others, i)
		if tg, ok := g.(TimedGate); ok {
			e.timed = append(e.timed, tg)
		}
	}
	return e
}

// update checks the gates that snap may have changed, reporting changes of
// verdict or reason to emit. It returns the index of a gate that failed or
// returned an error (with the error), or -1.
func (e *evaluation) update(ctx context.Context, snap Snapshot, emit func(Gate, Verdict, string)) (int, error) {
	e.round++
	check := func(i int) (bool, error) {
		if e.checked[i] == e.round {
			return false, nil
		}
		e.checked[i] = e.round
		g := e.gates[i]
		v, reason, err := g.Check(ctx, snap)
		if err != nil {
			return true, err
		}
		r := &e.results[i]
		if !r.done || r.verdict != v || r.reason != reason {
			if r.done && r.verdict == Pass {
				e.pending++
			}
			if v == Pass {
				e.pending--
			}
			*r = gateResult{verdict: v, reason: reason, done: true}
			emit(g, v, reason)
		}
		return v == Fail, nil
	}
	changes, known := snap.podChangesSince(e.seq)
	if e.full || !known {
		e.full = false
		e.seq = snap.Seq
		for i := range e.gates {
			if stop, err := check(i); stop {
				return i, err
			}
		}
		return -1, nil
	}
	e.seq = snap.Seq
	for _, c := range changes {
		for _, i := range e.byPod[c.name] {
			if stop, err := check(i); stop {
				return i, err
			}
		}
	}
	for _, i := range e.others {
		if stop, err := check(i); stop {
			return i, err
		}
	}
	return -1, nil
}

// nextCheck is the earliest time a timed gate wants to be checked again.
func (e *evaluation) nextCheck() (next time.Time) {
	for _, tg := range e.timed {
		if t := tg.NextCheck(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}
