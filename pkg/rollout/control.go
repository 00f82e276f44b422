package rollout

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// annotate sets one annotation on the StatefulSet.
func (r *Runner) annotate(ctx context.Context, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	_, err = r.Client.AppsV1().StatefulSets(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("annotating statefulset %s: %w", r.Name, err)
	}
	return nil
}

// Approval is what Approve did.
type Approval struct {
	// Holder is the process that waits at the pause and now continues.
	Holder string
	Step   int
	Steps  int
}

// Approve approves the pause of a rollout that a live process waits at
// (on a terminal, or in another process), through the StatefulSet it
// watches. It returns nil and no error when no live process holds the
// rollout: the caller then resumes it itself with Prepare and Run.
func (r *Runner) Approve(ctx context.Context) (*Approval, error) {
	rec, st, err := r.loadUnfinished(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, refuse("no unfinished rollout is recorded for statefulset %s: nothing to resume", r.Name)
	}
	if !r.holderLive(rec) || r.Journal.TakesOver() {
		return nil, nil
	}
	if st.PausedAfter == 0 {
		// Running, not waiting for approval: say who runs it and until when.
		return nil, r.Journal.Held(rec)
	}
	if err := r.annotate(ctx, AnnotationResume, resumeValue(st.ID, st.PausedAfter)); err != nil {
		return nil, err
	}
	return &Approval{Holder: rec.Holder, Step: st.PausedAfter, Steps: len(st.Plan.Steps)}, nil
}

// AbortOutcome is what Abort did.
type AbortOutcome struct {
	// Requested: a live process runs the rollout and was asked to stop;
	// it holds the partition itself.
	Requested bool
	Holder    string
	// Partition holds the pods (when not Requested).
	Partition int32
	Step      int
	Steps     int
}

// Abort stops the recorded rollout and leaves pods as they are, the
// partition raised to hold every pod not yet on the new revision. A live
// process running it is asked to stop through the StatefulSet it watches.
func (r *Runner) Abort(ctx context.Context) (*AbortOutcome, error) {
	rec, st, err := r.loadUnfinished(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, refuse("no unfinished rollout is recorded for statefulset %s: nothing to abort", r.Name)
	}
	out := &AbortOutcome{Step: st.StepNumber(), Steps: len(st.Plan.Steps), Holder: rec.Holder}
	if r.holderLive(rec) && st.Stage == StageRollback {
		return nil, refuse("%s is rolling statefulset %s back; a rollback is not aborted halfway: wait for it to finish (kubectl sts rollout status %s)", rec.Holder, r.Name, r.Name)
	}
	if r.holderLive(rec) {
		if err := r.annotate(ctx, AnnotationAbort, st.ID); err != nil {
			return nil, err
		}
		out.Requested = true
		return out, nil
	}
	rec, _, err = r.Journal.Begin(ctx, Operation, st)
	if err != nil {
		return nil, err
	}
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		_ = r.Journal.Release(context.WithoutCancel(ctx), rec, "")
		return nil, err
	}
	out.Partition = Partition(sts)
	msg := fmt.Sprintf("aborted with kubectl sts rollout abort at step %d of %d", out.Step, out.Steps)
	if st.Stage == StageRollback {
		msg = "the interrupted rollback was aborted with kubectl sts rollout abort; the template is restored and the partition left at its value"
	} else if sts.UID == st.UID {
		pods, err := r.listPods(ctx, sts)
		if err != nil {
			_ = r.Journal.Release(context.WithoutCancel(ctx), rec, "")
			return nil, err
		}
		p, err := holdPods(ctx, wait.Snapshot{StatefulSet: sts, Pods: pods}, st.To, func(p int32) error {
			_, err := r.Client.AppsV1().StatefulSets(r.Namespace).Patch(ctx, r.Name, types.StrategicMergePatchType, partitionPatch(p), metav1.PatchOptions{})
			return err
		})
		if err != nil {
			_ = r.Journal.Release(context.WithoutCancel(ctx), rec, "")
			return nil, fmt.Errorf("raising the partition of statefulset %s: %w", r.Name, err)
		}
		out.Partition = p
		msg += fmt.Sprintf("; the partition holds at %d and the pods stay as they are", p)
	}
	if err := r.Journal.Finish(ctx, rec, journal.Aborted, msg); err != nil {
		return nil, err
	}
	x := &execution{r: r, rec: rec, st: st, rep: progress.Reporter{Sink: r.Sink, Operation: Operation, Now: r.Now}}
	x.emit(progress.Event{Kind: "aborted", Level: progress.Warning, Object: "statefulset/" + r.Name, Message: msg})
	x.event(ctx, corev1.EventTypeWarning, ReasonAborted, msg)
	r.clearAnnotation(ctx, AnnotationAbort, "")
	return out, nil
}

// Report is the recorded rollout, for `rollout status`.
type Report struct {
	Record *journal.Record `json:"record"`
	State  *State          `json:"state,omitempty"`
	// Live is true while a process holds the lease.
	Live bool `json:"live"`
}

// Status returns the latest record of the StatefulSet (finished or not),
// or nil when there is none.
func (r *Runner) Status(ctx context.Context) (*Report, error) {
	rec, err := r.Journal.Load(ctx)
	if err != nil || rec == nil {
		return nil, err
	}
	rep := &Report{Record: rec, Live: !rec.Phase.Finished() && r.holderLive(rec)}
	if rec.Operation == Operation {
		var st State
		if err := rec.DecodeState(&st); err == nil {
			rep.State = &st
		}
	}
	return rep, nil
}
