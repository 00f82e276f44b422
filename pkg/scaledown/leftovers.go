package scaledown

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// ValidateSlot checks a slot name given to a cleanup (--slot) before
// anything runs.
func ValidateSlot(name string) error { return validSlotName(name) }

// DropsSlots reports whether the plan drops any replication slot.
func (p *Plan) DropsSlots() bool {
	for _, l := range p.Leftovers {
		if l.Drop {
			return true
		}
	}
	return false
}

// leftoverOptions are the desired ordinals and the slots named by the user.
func (p *Plan) leftoverOptions() plugins.LeftoverOptions {
	return plugins.LeftoverOptions{OrdinalsStart: p.OrdinalsStart, Replicas: int(p.Current), Names: p.cfg.Slots}
}

// planLeftovers asks the engine, for a cleanup, what removed members left
// on the members that remain (PostgreSQL: replication slots) and which of
// it is safe to drop. It changes nothing.
func (p *Plan) planLeftovers(ctx context.Context, d Deps, pods []*corev1.Pod) (*Plan, error) {
	cfg := p.cfg
	if !cfg.CleanupSlots {
		return p, nil
	}
	p.CleanupSlots = true
	var engine plugins.Engine
	if d.EngineFor != nil {
		e, err := d.EngineFor(p.sts)
		if err != nil {
			var unknown *plugins.UnknownEngineError
			if errors.As(err, &unknown) {
				return nil, &InvalidError{Msg: err.Error()}
			}
			return nil, err
		}
		engine = e
	}
	cleaner, ok := engine.(plugins.LeftoverCleaner)
	if engine == nil || !ok {
		if len(cfg.Slots) > 0 {
			what := "no database engine was detected"
			if engine != nil {
				what = fmt.Sprintf("the %s engine keeps no replication slots", engine.Name())
			}
			return nil, &InvalidError{Msg: fmt.Sprintf("--slot needs an engine that keeps replication slots, but %s: pass --engine postgres", what)}
		}
		return p, nil
	}
	p.Engine = engine.Name()
	target := plugins.Target{StatefulSet: p.sts, Pods: pods, Exec: d.Exec, Container: cfg.Container}
	ls, err := cleaner.Leftovers(ctx, target, p.leftoverOptions())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return p, &RefusedError{StatefulSet: p.StatefulSet, Reasons: []string{fmt.Sprintf(
			"cannot ask the %s engine which replication slots removed members left: %v; fix the database, or pass --engine none to clean up the claims only",
			engine.Name(), err)}}
	}
	p.Leftovers = ls
	return p, nil
}

// dropLeftovers drops the slots the plan marked, each after the engine
// judged it again on the members' current state.
func (r *runner) dropLeftovers(ctx context.Context) error {
	if !r.plan.DropsSlots() {
		return nil
	}
	if r.deps.EngineFor == nil {
		return fmt.Errorf("the %s engine planned for is not available", r.plan.Engine)
	}
	e, err := r.deps.EngineFor(r.plan.sts)
	if err != nil {
		return err
	}
	cleaner, ok := e.(plugins.LeftoverCleaner)
	if e == nil || !ok || e.Name() != r.plan.Engine {
		return fmt.Errorf("the %s engine planned for is no longer detected", r.plan.Engine)
	}
	pods, err := wait.ListPods(ctx, r.deps.Kube, r.plan.sts)
	if err != nil {
		return err
	}
	target := plugins.Target{StatefulSet: r.plan.sts, Pods: pods, Exec: r.deps.Exec, Container: r.cfg.Container}
	for _, l := range r.plan.Leftovers {
		obj := l.Kind + "/" + l.Name
		if !l.Drop {
			continue
		}
		if slices.Contains(r.state.DroppedSlots, l.Name) {
			continue
		}
		dropped := false
		events := plugins.RemoveOptions{Events: func(ev plugins.RemoveEvent) {
			level := progress.Info
			if ev.Action == plugins.ActionChanged {
				level, dropped = progress.Success, true
			}
			r.emit(0, "slot-"+string(ev.Action), level, obj, ev.Message)
			if ev.Action == plugins.ActionChanged {
				r.event(ctx, corev1.EventTypeNormal, "SlotDropped", ev.Message)
			}
		}}
		if err := cleaner.DropLeftover(ctx, target, l, r.leftoverOptions(), events); err != nil {
			return r.stepFailed(ctx, err)
		}
		if !dropped {
			continue
		}
		r.state.DroppedSlots = append(r.state.DroppedSlots, l.Name)
		r.result.DroppedSlots = append(r.result.DroppedSlots, l.Name)
		r.done = append(r.done, "dropped slot "+l.Name)
		if err := r.save(ctx, "dropped replication slot "+l.Name); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) leftoverOptions() plugins.LeftoverOptions { return r.plan.leftoverOptions() }

// slotsLeft lists the leftover slots the plan does not drop, with why.
func (p *Plan) slotsLeft() []string {
	var out []string
	for _, l := range p.Leftovers {
		if !l.Drop {
			out = append(out, fmt.Sprintf("%s %s (%s)", l.Kind, l.Name, l.Reason))
		}
	}
	return out
}

// dropped names the slots the plan drops.
func (p *Plan) dropped() []string {
	var out []string
	for _, l := range p.Leftovers {
		if l.Drop {
			out = append(out, l.Name)
		}
	}
	return out
}
