package scaledown

import (
	"context"
	"fmt"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// dryRunEngineTimeout bounds each engine step of a dry run: it only reads.
const dryRunEngineTimeout = time.Minute

// DryRun asks the engine, for every step of the plan, what its removal
// steps would change (e.g. which replication slots it would drop), and
// reports that as progress events. It changes nothing: no journal record,
// no scale, no claim, no database change.
func DryRun(ctx context.Context, p *Plan, d Deps) error {
	if p.cfg.Cleanup || p.Engine == "" || d.EngineFor == nil {
		return nil
	}
	e, err := d.EngineFor(p.sts)
	if err != nil || e == nil {
		return err
	}
	rep := progress.Reporter{Sink: d.Sink, Operation: p.Operation, Now: d.Now}
	pods, err := wait.ListPods(ctx, d.Kube, p.sts)
	if err != nil {
		return err
	}
	target := plugins.Target{StatefulSet: p.sts, Pods: pods, Exec: d.Exec, Container: p.cfg.Container}
	for i, s := range p.Steps {
		if s.Done {
			continue
		}
		step := i + 1
		opts := plugins.RemoveOptions{
			SlotNames: s.Slots, DryRun: true, Wait: dryRunEngineTimeout,
			Events: func(ev plugins.RemoveEvent) {
				level := progress.Info
				if ev.Action == plugins.ActionWarning {
					level = progress.Warning
				}
				msg := ev.Message
				obj := ev.Object
				if obj == "" && ev.Pod != "" {
					obj = "pod/" + ev.Pod
				}
				rep.Emit(progress.Event{Step: step, Steps: len(p.Steps), Kind: "dry-run-engine-" + string(ev.Action), Level: level, Object: obj, Message: msg})
			},
		}
		run := func(name string, f func(context.Context, plugins.Target, int, plugins.RemoveOptions) error) {
			cctx, cancel := context.WithTimeout(ctx, dryRunEngineTimeout)
			defer cancel()
			if err := f(cctx, target, s.Ordinal, opts); err != nil && ctx.Err() == nil {
				rep.Emit(progress.Event{Step: step, Steps: len(p.Steps), Kind: "dry-run-engine-error", Level: progress.Warning, Object: "pod/" + s.Pod,
					Message: fmt.Sprintf("%s %s step would fail now: %v", e.Name(), name, err)})
			}
		}
		if !s.Stage.reached(StagePrepared) {
			run("pre-removal", e.BeforeRemove)
		}
		if !s.Stage.reached(StageEngineDone) {
			run("post-removal", e.AfterRemove)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Abort drops the record of an interrupted scale-down (or claim cleanup)
// of a StatefulSet, so a new one can start. It changes nothing else: the
// StatefulSet keeps the replicas the interrupted run left it with. It
// refuses while a live process holds the record.
func Abort(ctx context.Context, namespace, name, operation string, d Deps) (*journal.Record, error) {
	j := d.journal(namespace, name)
	rec, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil || rec.Phase.Finished() {
		return nil, &InvalidError{Msg: fmt.Sprintf("no interrupted operation is recorded for statefulset %s: nothing to abort", name)}
	}
	if rec.Operation != operation {
		return nil, &InvalidError{Msg: fmt.Sprintf("the unfinished operation recorded for statefulset %s is a %s, not a %s: abort it with its own command", name, rec.Operation, operation)}
	}
	if held := j.Held(rec); held != nil {
		return nil, held
	}
	if err := j.Finish(ctx, rec, journal.Aborted, "aborted by "+d.Holder); err != nil {
		return nil, err
	}
	return rec, nil
}
