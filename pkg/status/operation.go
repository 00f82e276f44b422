package status

import (
	"fmt"
	"time"
)

// OperationStatus is an unfinished kubectl-sts operation recorded for the
// StatefulSet (its configmap kubectl-sts.NAME): a rollout, scale-down or
// expand-pvc that is running, paused, or stopped part-way.
type OperationStatus struct {
	// Operation is "rollout", "scale-down" or "expand-pvc"; Phase is
	// Running or Paused.
	Operation string    `json:"operation"`
	Phase     string    `json:"phase"`
	Started   time.Time `json:"started"`
	// Holder and Heartbeat are the last process that held the lease and
	// its last renewal.
	Holder    string    `json:"holder,omitempty"`
	Heartbeat time.Time `json:"heartbeat,omitempty"`
	// LeaseExpires is set while that process's lease is live: it is
	// acting on the StatefulSet now, and others are refused until then.
	LeaseExpires *time.Time `json:"leaseExpires,omitempty"`
	// From and To are a rollout's revisions: the one it started from and
	// the one it rolls out (empty until its template is applied).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Live reports whether a process holds the operation's lease.
func (o *OperationStatus) Live() bool { return o.LeaseExpires != nil }

// SetOperation records op (nil: none is unfinished) in r and judges r
// again.
func SetOperation(r *Report, op *OperationStatus, opts Options) {
	r.Operation = op
	r.Verdict = Judge(r, opts)
}

// CodeOperationUnfinished: a kubectl-sts operation is running, paused or
// stopped part-way; other operations are refused until it ends.
const CodeOperationUnfinished Code = "OperationUnfinished"

func (j *judge) operation() {
	op := j.r.Operation
	if op == nil {
		return
	}
	name, ns := j.sts.Name, j.nsFlag()
	obj := "configmap/kubectl-sts." + name
	started := op.Started.UTC().Format(time.RFC3339)
	if op.Live() {
		follow := ""
		if op.Operation == "rollout" {
			follow = fmt.Sprintf("follow it with: kubectl sts rollout status %s %s; ", name, ns)
		}
		j.add(Reason{Code: CodeOperationUnfinished, Severity: SeverityProgressing, Object: obj,
			Message: fmt.Sprintf("the %s started %s is running: %s holds its lease (last heartbeat %s ago; it expires at %s)",
				op.Operation, started, op.Holder, j.now.Sub(op.Heartbeat).Round(time.Second), op.LeaseExpires.UTC().Format(time.RFC3339)),
			Hint: follow + fmt.Sprintf("other kubectl sts changes are refused until it ends; if that process was killed, run the same command again after %s, or now with --take-over",
				op.LeaseExpires.UTC().Format(time.RFC3339))})
		return
	}
	if op.Operation == "rollout" {
		if upd := j.sts.UpdateRevision; op.To != "" && upd != "" && upd != op.To && upd != op.From {
			j.add(Reason{Code: CodeOperationUnfinished, Severity: SeverityProgressing, Object: obj,
				Message: fmt.Sprintf("the rollout started %s is unfinished (%s), and the pod template changed since it started (update revision now %s, the rollout was rolling out %s)",
					started, op.Phase, upd, op.To),
				Hint: fmt.Sprintf("it cannot continue: undo it with: kubectl sts rollout undo %s %s (back to revision %s, dropping the newer template), or abort it with: kubectl sts rollout abort %s %s (keeps the StatefulSet as it is)",
					name, ns, op.From, name, ns)})
			return
		}
		if op.Phase == "Paused" {
			j.add(Reason{Code: CodeOperationUnfinished, Severity: SeverityProgressing, Object: obj,
				Message: fmt.Sprintf("the rollout started %s is paused at an approval point", started),
				Hint: fmt.Sprintf("continue it with: kubectl sts rollout resume %s %s (or undo it with: kubectl sts rollout undo %s %s)",
					name, ns, name, ns)})
			return
		}
		j.add(Reason{Code: CodeOperationUnfinished, Severity: SeverityProgressing, Object: obj,
			Message: fmt.Sprintf("the rollout started %s stopped part-way (%s, no process holds it)", started, op.Phase),
			Hint: fmt.Sprintf("continue it with: kubectl sts rollout resume %s %s (or undo it with: kubectl sts rollout undo %s %s); its record: kubectl sts rollout status %s %s",
				name, ns, name, ns, name, ns)})
		return
	}
	j.add(Reason{Code: CodeOperationUnfinished, Severity: SeverityProgressing, Object: obj,
		Message: fmt.Sprintf("the %s started %s stopped part-way (%s, no process holds it)", op.Operation, started, op.Phase),
		Hint:    fmt.Sprintf("run the same kubectl sts %s command again to finish it; other kubectl sts changes are refused until then", op.Operation)})
}
