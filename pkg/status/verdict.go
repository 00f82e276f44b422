package status

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// State is the overall verdict.
type State string

// States, from best to worst.
const (
	// StateHealthy: every desired pod is Ready on the update revision and
	// nothing needs a person.
	StateHealthy State = "Healthy"
	// StateProgressing: a change is under way (rollout, scaling, pods
	// starting, a volume resizing) or held on purpose (partition).
	StateProgressing State = "Progressing"
	// StateNeedsAttention: nothing is broken but a person has to act
	// (leftover claims, a resize waiting for a pod restart).
	StateNeedsAttention State = "NeedsAttention"
	// StateDegraded: something is broken (a stuck rollout, pods not Ready
	// past the threshold, a failed resize).
	StateDegraded State = "Degraded"
)

// Severity grades one reason; the worst reason sets the State.
type Severity string

// Severities, from mildest to worst.
const (
	SeverityInfo        Severity = "info"
	SeverityProgressing Severity = "progressing"
	SeverityWarning     Severity = "warning"
	SeverityError       Severity = "error"
)

func (s Severity) rank() int {
	switch s {
	case SeverityProgressing:
		return 1
	case SeverityWarning:
		return 2
	case SeverityError:
		return 3
	}
	return 0
}

func (s Severity) state() State {
	switch s {
	case SeverityProgressing:
		return StateProgressing
	case SeverityWarning:
		return StateNeedsAttention
	case SeverityError:
		return StateDegraded
	}
	return StateHealthy
}

// Code identifies a kind of reason; docs/status.md lists them.
type Code string

// Reason codes.
const (
	CodeDeleting                Code = "Deleting"
	CodeNotObserved             Code = "NotObserved"
	CodeRolloutInProgress       Code = "RolloutInProgress"
	CodeRolloutPaused           Code = "RolloutPaused"
	CodeRolloutStuck            Code = "RolloutStuck"
	CodeUpdatePendingOnDelete   Code = "UpdatePendingOnDelete"
	CodePodNotReady             Code = "PodNotReady"
	CodePodMissing              Code = "PodMissing"
	CodePodTerminating          Code = "PodTerminating"
	CodeScaleDownInProgress     Code = "ScaleDownInProgress"
	CodePVCMissing              Code = "PVCMissing"
	CodePVCPending              Code = "PVCPending"
	CodePVCLost                 Code = "PVCLost"
	CodePVCResizing             Code = "PVCResizing"
	CodePVCResizePendingRestart Code = "PVCResizePendingRestart"
	CodePVCResizeFailed         Code = "PVCResizeFailed"
	CodeLeftoverPVCs            Code = "LeftoverPVCs"
	CodeEngineUnhealthy         Code = "EngineUnhealthy"
	CodeEngineUnavailable       Code = "EngineUnavailable"
	// Engine traps (plugins.Trap* codes).
	CodeReplicationBroken   Code = plugins.TrapReplicationBroken
	CodeReplicaNotStreaming Code = plugins.TrapReplicaNotStreaming
	CodeReplayPaused        Code = plugins.TrapReplayPaused
	CodeNoReplicasConnected Code = plugins.TrapNoReplicasConnected
	CodeReplicationLag      Code = plugins.TrapReplicationLag
	CodeSlotRetainingWAL    Code = plugins.TrapSlotRetainingWAL
	CodeSlotWALLost         Code = plugins.TrapSlotWALLost
	CodeLeftoverSlot        Code = plugins.TrapLeftoverSlot
)

// Reason is one finding behind the verdict.
type Reason struct {
	Code     Code     `json:"code"`
	Severity Severity `json:"severity"`
	// Object names what the reason is about, e.g. "pod/db-2".
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	// Hint says what to run or check, when there is something to do.
	Hint string `json:"hint,omitempty"`
}

// Verdict is the health judgement of a report.
type Verdict struct {
	Healthy bool     `json:"healthy"`
	State   State    `json:"state"`
	Reasons []Reason `json:"reasons"`
}

// Has reports whether any reason has one of the codes.
func (v Verdict) Has(codes ...Code) bool {
	for _, r := range v.Reasons {
		if slices.Contains(codes, r.Code) {
			return true
		}
	}
	return false
}

// Codes returns the distinct reason codes, worst first.
func (v Verdict) Codes() []Code {
	var out []Code
	for _, r := range v.Reasons {
		if !slices.Contains(out, r.Code) {
			out = append(out, r.Code)
		}
	}
	return out
}

// Options tune the verdict.
type Options struct {
	// StuckAfter is how long a pod may stay not Ready before the verdict
	// calls it stuck rather than starting; zero means DefaultStuckAfter.
	StuckAfter time.Duration
	// MaxLag bounds replica lag (status --max-lag); zero bounds nothing.
	MaxLag plugins.HealthOptions
	// SlotRetainedBytes is how much WAL an inactive slot may retain before
	// it is named; zero means plugins.DefaultSlotRetainedBytes.
	SlotRetainedBytes int64
	// Server is what discovery said about the API server; it decides
	// whether status.currentRevision can be trusted. The zero value is an
	// unknown server, taken as the newest tested minor.
	Server kube.Server
}

// DefaultStuckAfter is the default of Options.StuckAfter (--stuck-after).
const DefaultStuckAfter = 5 * time.Minute

func (o Options) stuckAfter() time.Duration {
	if o.StuckAfter <= 0 {
		return DefaultStuckAfter
	}
	return o.StuckAfter
}

// maxListed bounds how many names one reason message lists.
const maxListed = 5

// Judge computes the verdict of a report. It is a pure function of the
// model (ages are measured against r.ObservedAt), so every workflow can
// call it on a report it assembled itself.
func Judge(r *Report, opts Options) Verdict {
	j := judge{r: r, now: r.ObservedAt, stuckAfter: opts.stuckAfter(), sts: &r.StatefulSet}
	j.statefulSet()
	j.pods()
	j.rollout()
	j.claims()
	j.leftovers()
	j.engine()
	j.operation()

	// Worst first; equal severities keep the order they were found in.
	slices.SortStableFunc(j.reasons, func(a, b Reason) int {
		return cmp.Compare(b.Severity.rank(), a.Severity.rank())
	})
	v := Verdict{State: StateHealthy, Reasons: j.reasons}
	if v.Reasons == nil {
		v.Reasons = []Reason{}
	}
	if len(v.Reasons) > 0 {
		v.State = v.Reasons[0].Severity.state()
	}
	v.Healthy = v.State == StateHealthy
	return v
}

type judge struct {
	r          *Report
	sts        *StatefulSetInfo
	now        time.Time
	stuckAfter time.Duration
	reasons    []Reason
	// stuck is set once a RolloutStuck reason was given, so the rollout
	// summary does not repeat it as mere progress.
	stuck bool
	// blocker is the lowest desired pod that is not Ready, which an
	// OrderedReady StatefulSet waits for.
	blocker string
}

func (j *judge) add(r Reason) { j.reasons = append(j.reasons, r) }

func (j *judge) orderedReady() bool {
	return j.sts.PodManagementPolicy != string(appsv1.ParallelPodManagement)
}

func (j *judge) nsFlag() string { return "-n " + j.sts.Namespace }

func (j *judge) short(rev string) string { return ShortRevision(j.sts.Name, rev) }

func (j *judge) statefulSet() {
	if j.sts.Deleting {
		j.add(Reason{Code: CodeDeleting, Severity: SeverityWarning, Object: "statefulset/" + j.sts.Name,
			Message: fmt.Sprintf("statefulset %s is being deleted", j.sts.Name)})
	}
	if j.sts.ObservedGeneration < j.sts.Generation {
		j.add(Reason{Code: CodeNotObserved, Severity: SeverityProgressing, Object: "statefulset/" + j.sts.Name,
			Message: fmt.Sprintf("the StatefulSet controller has not yet acted on the latest spec (generation %d, observed %d)",
				j.sts.Generation, j.sts.ObservedGeneration)})
	}
}

func (j *judge) pods() {
	var missing, condemned []string
	for _, o := range j.r.Ordinals {
		p := o.Pod
		if !o.Desired {
			if p != nil {
				condemned = append(condemned, p.Name)
			}
			continue
		}
		switch {
		case p == nil:
			missing = append(missing, o.PodName)
		case p.Terminating:
			j.terminating(p)
		case !p.Ready:
			if j.blocker == "" {
				j.blocker = p.Name
			}
			j.notReady(p)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s %s not exist yet", plural(len(missing), "pod", "pods"), list(missing))
		if len(missing) == 1 {
			msg = fmt.Sprintf("pod %s does not exist yet", missing[0])
		}
		if j.blocker != "" && j.orderedReady() {
			msg += fmt.Sprintf(": with OrderedReady the controller creates it once %s is Ready", j.blocker)
		}
		j.add(Reason{Code: CodePodMissing, Severity: SeverityProgressing, Object: podObjects(missing), Message: msg})
	}
	if len(condemned) > 0 {
		j.add(Reason{Code: CodeScaleDownInProgress, Severity: SeverityProgressing, Object: podObjects(condemned),
			Message: fmt.Sprintf("scaling down to %d replicas: %s still %s", j.sts.Replicas.Desired, list(condemned), plural(len(condemned), "exists", "exist"))})
	}
}

func (j *judge) terminating(p *PodStatus) {
	r := Reason{Code: CodePodTerminating, Severity: SeverityProgressing, Object: "pod/" + p.Name,
		Message: fmt.Sprintf("pod %s is terminating; the controller recreates it once it is gone", p.Name)}
	// A pod that takes this long to go is held by a finalizer or a lost node.
	if p.NotReadySince != nil && j.now.Sub(*p.NotReadySince) >= j.stuckAfter {
		r.Severity = SeverityWarning
		r.Message = fmt.Sprintf("pod %s has been terminating for over %s", p.Name, human(j.now.Sub(*p.NotReadySince)))
		r.Hint = fmt.Sprintf("check its finalizers and node: kubectl describe pod %s %s", p.Name, j.nsFlag())
	}
	j.add(r)
}

func (j *judge) notReady(p *PodStatus) {
	var since time.Duration
	if p.NotReadySince != nil {
		since = j.now.Sub(*p.NotReadySince)
	}
	state := p.Detail
	rollingOut := j.sts.UpdateRevision != "" && j.sts.UpdateRevision != j.sts.CurrentRevision
	if since >= j.stuckAfter {
		switch {
		case p.Revision == j.sts.UpdateRevision && rollingOut:
			j.stuck = true
			j.add(j.stuckOnUpdate(p, since, state))
			return
		case p.Revision != j.sts.UpdateRevision && p.Revision != j.sts.CurrentRevision && p.Revision != "":
			j.stuck = true
			j.add(j.stuckOnAbandoned(p, since, state))
			return
		}
		j.add(Reason{Code: CodePodNotReady, Severity: SeverityError, Object: "pod/" + p.Name,
			Message: fmt.Sprintf("pod %s has not been Ready for %s (state: %s)", p.Name, human(since), state),
			Hint:    fmt.Sprintf("look at its events and logs: kubectl describe pod %s %s; kubectl logs %s %s", p.Name, j.nsFlag(), p.Name, j.nsFlag())})
		return
	}
	sev := SeverityProgressing
	if p.Status != p.Phase && p.Status != "Pending" {
		// A failing container (CrashLoopBackOff, ImagePullBackOff, ...)
		// is broken now, not merely starting.
		sev = SeverityError
	}
	j.add(Reason{Code: CodePodNotReady, Severity: sev, Object: "pod/" + p.Name,
		Message: fmt.Sprintf("pod %s has not been Ready for %s (state: %s)", p.Name, human(since), state)})
}

// stuckOnUpdate explains the stuck rollout trap: the controller waits for
// a pod of the new revision that will never be Ready.
func (j *judge) stuckOnUpdate(p *PodStatus, since time.Duration, state string) Reason {
	name, ns := j.sts.Name, j.nsFlag()
	msg := fmt.Sprintf("rollout stuck: pod %s on update revision %s has not been Ready for %s (state: %s), so the rollout will not continue",
		p.Name, j.short(p.Revision), human(since), state)
	var hint string
	if j.orderedReady() {
		msg += fmt.Sprintf(". Reverting the template alone will not replace %s: with podManagementPolicy OrderedReady the controller waits for it to become Ready before it changes anything", p.Name)
		hint = fmt.Sprintf("kubectl sts rollout undo %s %s restores the previous template and replaces the stuck pods; by hand: revert the template (kubectl rollout undo statefulset/%s %s), then delete the pods still on revision %s so they are recreated: kubectl delete pod %s %s",
			name, ns, name, ns, j.short(p.Revision), strings.Join(j.podsOnRevision(p.Revision), " "), ns)
	} else {
		hint = fmt.Sprintf("fix or revert the template (kubectl rollout undo statefulset/%s %s); with podManagementPolicy Parallel the controller then replaces %s",
			name, ns, p.Name)
	}
	return Reason{Code: CodeRolloutStuck, Severity: SeverityError, Object: "pod/" + p.Name, Message: msg, Hint: hint}
}

// stuckOnAbandoned is the same trap after a revert: the pod runs a revision
// that is neither current nor update and is never replaced.
func (j *judge) stuckOnAbandoned(p *PodStatus, since time.Duration, state string) Reason {
	ns := j.nsFlag()
	msg := fmt.Sprintf("rollout stuck: pod %s runs revision %s, which is no longer the update revision %s, and has not been Ready for %s (state: %s)",
		p.Name, j.short(p.Revision), j.short(j.sts.UpdateRevision), human(since), state)
	if j.orderedReady() {
		msg += ". With podManagementPolicy OrderedReady the controller waits for it to become Ready and will not replace it by itself"
	}
	return Reason{Code: CodeRolloutStuck, Severity: SeverityError, Object: "pod/" + p.Name, Message: msg,
		Hint: fmt.Sprintf("delete the pods on revision %s so the controller recreates them from revision %s: kubectl delete pod %s %s",
			j.short(p.Revision), j.short(j.sts.UpdateRevision), strings.Join(j.podsOnRevision(p.Revision), " "), ns)}
}

func (j *judge) podsOnRevision(rev string) []string {
	var names []string
	for _, o := range j.r.Ordinals {
		if o.Pod != nil && o.Pod.Revision == rev && !o.Pod.Terminating {
			names = append(names, o.Pod.Name)
		}
	}
	return names
}

func (j *judge) rollout() {
	if j.sts.UpdateRevision == "" {
		return
	}
	var desired, outdated []*PodStatus
	for _, o := range j.r.Ordinals {
		if o.Desired && o.Pod != nil {
			desired = append(desired, o.Pod)
			if o.Pod.Revision != j.sts.UpdateRevision {
				outdated = append(outdated, o.Pod)
			}
		}
	}
	rollingOut := j.sts.UpdateRevision != j.sts.CurrentRevision
	if !rollingOut && len(outdated) == 0 {
		return
	}
	upd := j.short(j.sts.UpdateRevision)
	name, ns := j.sts.Name, j.nsFlag()

	if j.sts.UpdateStrategy == string(appsv1.OnDeleteStatefulSetStrategyType) {
		if len(outdated) == 0 {
			return
		}
		names := podNames(outdated)
		j.add(Reason{Code: CodeUpdatePendingOnDelete, Severity: SeverityWarning, Object: podObjects(names),
			Message: fmt.Sprintf("%d of %d pods run an older revision than %s; with updateStrategy OnDelete they update only when deleted",
				len(outdated), len(desired), upd),
			Hint: fmt.Sprintf("delete them one at a time, waiting for each to be Ready: kubectl delete pod %s %s", names[len(names)-1], ns)})
		return
	}
	if j.stuck {
		return
	}

	// Pods whose index is at or above the partition move to the update
	// revision; the others stay where they are on purpose.
	var targets, held, updatedReady int
	for _, o := range j.r.Ordinals {
		if !o.Desired {
			continue
		}
		if j.sts.UpdateStrategy == string(appsv1.RollingUpdateStatefulSetStrategyType) &&
			int32(o.Ordinal)-j.sts.OrdinalsStart < j.sts.Partition {
			held++
			continue
		}
		targets++
		if o.Pod != nil && o.Pod.Revision == j.sts.UpdateRevision && o.Pod.Ready && !o.Pod.Terminating {
			updatedReady++
		}
	}
	switch {
	case updatedReady < targets:
		j.add(Reason{Code: CodeRolloutInProgress, Severity: SeverityProgressing, Object: "statefulset/" + name,
			Message: fmt.Sprintf("rolling out revision %s: %d of %d pods updated and Ready%s",
				upd, updatedReady, targets, partitionNote(j.sts.Partition, held))})
	case held > 0 && len(outdated) > 0:
		first := j.sts.OrdinalsStart + j.sts.Partition
		hint := fmt.Sprintf("continue with a staged rollout: kubectl sts rollout %s --staged %s, or lower the partition: kubectl patch statefulset %s %s -p '{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":0}}}}'",
			name, ns, name, ns)
		if op := j.r.Operation; op != nil && op.Operation == "rollout" {
			hint = "the partition is held by the unfinished kubectl sts rollout (see " + string(CodeOperationUnfinished) +
				" for how to go on); do not lower it by hand: the rollout stops when someone else changes the StatefulSet"
		}
		j.add(Reason{Code: CodeRolloutPaused, Severity: SeverityProgressing, Object: "statefulset/" + name,
			Message: fmt.Sprintf("rollout paused by partition %d: %d of %d pods run revision %s, %d remain on %s (ordinals below %d)",
				j.sts.Partition, updatedReady, targets+held, upd, len(outdated), j.short(j.sts.CurrentRevision), first),
			Hint: hint})
	case rollingOut:
		j.add(Reason{Code: CodeRolloutInProgress, Severity: SeverityProgressing, Object: "statefulset/" + name,
			Message: fmt.Sprintf("rolling out revision %s: all %d pods updated; waiting for the controller to record it as current", upd, targets)})
	}
}

func partitionNote(partition int32, held int) string {
	if partition <= 0 {
		return ""
	}
	return fmt.Sprintf(" (partition %d holds %d %s on the current revision)", partition, held, plural(held, "pod", "pods"))
}

func (j *judge) claims() {
	for _, o := range j.r.Ordinals {
		for _, c := range o.PVCs {
			j.claim(o, c)
		}
	}
}

func (j *judge) claim(o OrdinalStatus, c PVCStatus) {
	obj := "pvc/" + c.Name
	ns := j.nsFlag()
	if c.Missing {
		if o.Pod != nil {
			j.add(Reason{Code: CodePVCMissing, Severity: SeverityProgressing, Object: obj,
				Message: fmt.Sprintf("pvc %s of pod %s does not exist yet", c.Name, o.PodName)})
		}
		return
	}
	switch c.Phase {
	case "Lost":
		j.add(Reason{Code: CodePVCLost, Severity: SeverityError, Object: obj,
			Message: fmt.Sprintf("pvc %s lost its volume %s", c.Name, c.VolumeName),
			Hint:    fmt.Sprintf("kubectl describe pvc %s %s", c.Name, ns)})
		return
	case "Pending":
		j.add(Reason{Code: CodePVCPending, Severity: SeverityProgressing, Object: obj,
			Message: fmt.Sprintf("pvc %s is not bound yet", c.Name),
			Hint:    fmt.Sprintf("if it stays Pending: kubectl describe pvc %s %s", c.Name, ns)})
		return
	}
	switch c.Resize {
	case ResizeRequested, ResizeInProgress:
		j.add(Reason{Code: CodePVCResizing, Severity: SeverityProgressing, Object: obj,
			Message: fmt.Sprintf("pvc %s is being resized from %s to %s%s", c.Name, orDash(c.Capacity), c.Requested, detail(c.ResizeDetail))})
	case ResizePendingRestart:
		r := Reason{Code: CodePVCResizePendingRestart, Severity: SeverityWarning, Object: obj,
			Message: fmt.Sprintf("pvc %s: the volume was expanded to %s but the file system resize waits for pod %s to restart (capacity still %s)",
				c.Name, orDash(c.Allocated), o.PodName, orDash(c.Capacity))}
		if o.Pod != nil {
			claim := ""
			if len(j.sts.VolumeClaimTemplates) > 1 {
				claim = " --claim " + c.Template
			}
			r.Hint = fmt.Sprintf("restart the pod when it is safe (not the primary): kubectl delete pod %s %s; or let expand-pvc do it: kubectl sts expand-pvc %s%s --size %s %s",
				o.PodName, ns, j.sts.Name, claim, orDash(c.Allocated), ns)
		} else {
			r.Message = fmt.Sprintf("pvc %s: the volume was expanded to %s; the file system resize finishes when pod %s starts", c.Name, orDash(c.Allocated), o.PodName)
		}
		j.add(r)
	case ResizeFailed:
		j.add(Reason{Code: CodePVCResizeFailed, Severity: SeverityError, Object: obj,
			Message: fmt.Sprintf("pvc %s: resize to %s failed%s", c.Name, c.Requested, detail(c.ResizeDetail)),
			Hint: fmt.Sprintf("check the storage class and driver (kubectl describe pvc %s %s); to recover, set the request back to the capacity %s",
				c.Name, ns, orDash(c.Capacity))})
	}
}

func (j *judge) leftovers() {
	if len(j.r.LeftoverPVCs) == 0 {
		return
	}
	names := make([]string, 0, len(j.r.LeftoverPVCs))
	objs := make([]string, 0, len(j.r.LeftoverPVCs))
	for _, c := range j.r.LeftoverPVCs {
		names = append(names, c.Name)
		objs = append(objs, "pvc/"+c.Name)
	}
	first := j.sts.OrdinalsStart
	last := first + j.sts.Replicas.Desired - 1
	j.add(Reason{Code: CodeLeftoverPVCs, Severity: SeverityWarning, Object: strings.Join(truncate(objs), ","),
		Message: fmt.Sprintf("%d %s left over from ordinals outside %s (whenScaled: %s): %s",
			len(names), plural(len(names), "pvc", "pvcs"), ordinalRange(first, last), j.sts.PVCRetention.WhenScaled, list(names)),
		Hint: fmt.Sprintf("a later scale-up reattaches them with their old data; delete them once the data is no longer needed: kubectl sts cleanup-pvcs %s %s",
			j.sts.Name, j.nsFlag())})
}

func (j *judge) engine() {
	e := j.r.Engine
	if e == nil {
		return
	}
	switch {
	case e.Error != "":
		j.add(Reason{Code: CodeEngineUnavailable, Severity: SeverityWarning, Object: "statefulset/" + j.sts.Name,
			Message: fmt.Sprintf("the %s engine could not read the members: %s", e.Name, e.Error)})
	case !e.Healthy:
		j.add(Reason{Code: CodeEngineUnhealthy, Severity: SeverityWarning, Object: "statefulset/" + j.sts.Name,
			Message: fmt.Sprintf("%s reports the replica set unhealthy: %s", e.Name, e.Reason)})
	}
	for _, t := range e.Traps {
		sev := SeverityWarning
		if t.Broken {
			sev = SeverityError
		}
		j.add(Reason{Code: Code(t.Code), Severity: sev, Object: t.Object, Message: t.Message, Hint: t.Hint})
	}
}

func ordinalRange(first, last int32) string {
	if last < first {
		return "the desired range (0 replicas)"
	}
	return fmt.Sprintf("%d..%d", first, last)
}

func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func truncate(names []string) []string {
	if len(names) <= maxListed {
		return names
	}
	return names[:maxListed]
}

func list(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
}

func podNames(pods []*PodStatus) []string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return names
}

func podObjects(names []string) string {
	objs := make([]string, 0, len(names))
	for _, n := range truncate(names) {
		objs = append(objs, "pod/"+n)
	}
	return strings.Join(objs, ",")
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
