package expand

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Defaults of the tunable durations.
const (
	DefaultTimeout = 10 * time.Minute
	// DefaultOnlineResizeWait is how long --restart auto lets a node grow
	// a mounted file system before restarting the pod: kubelets finish an
	// online expansion on their next pod sync, about a minute apart.
	DefaultOnlineResizeWait = 2 * time.Minute
)

// Params are the user's choices.
type Params struct {
	// Size is the new size of every claim of the template.
	Size resource.Quantity
	// Claim is the volumeClaimTemplate; empty picks the only one.
	Claim   string
	Restart RestartPolicy
	// UpdateTemplate makes the volumeClaimTemplate say Size afterwards.
	UpdateTemplate bool
	// Force goes ahead while a rollout is under way or pods are not Ready.
	Force bool
	// Timeout bounds the work on one ordinal, and the template step.
	Timeout time.Duration
	// DisableEviction deletes pods to restart them instead of evicting
	// them, bypassing PodDisruptionBudgets (kubectl drain's
	// --disable-eviction).
	DisableEviction bool
	// EvictionRetry is the pause between evictions a budget refuses; zero
	// is kube.DefaultEvictionRetry.
	EvictionRetry time.Duration
	// OnlineResizeWait is how long a file system resize may take on a
	// running pod before --restart auto restarts it (and --restart never
	// gives up waiting and reports it).
	OnlineResizeWait time.Duration
}

func (p Params) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultTimeout
	}
	return p.Timeout
}

func (p Params) onlineResizeWait() time.Duration {
	if p.OnlineResizeWait <= 0 {
		return DefaultOnlineResizeWait
	}
	return p.OnlineResizeWait
}

// Action is what the plan does with one ordinal's claim.
type Action string

// Actions.
const (
	// ActionExpand raises the request, then waits, restarting the pod if
	// needed.
	ActionExpand Action = "expand"
	// ActionContinue finishes a resize whose request already says the size
	// (an earlier run, or someone else, raised it).
	ActionContinue Action = "continue"
	// ActionDone skips a claim whose capacity already is the size.
	ActionDone Action = "done"
	// ActionRetry retries a resize that the storage reported infeasible,
	// with a request lowered to the size (Kubernetes 1.32 or later allows
	// any request above the capacity; Inputs.Server decides).
	ActionRetry Action = "retry"
)

// Restart expectations shown in the plan.
const (
	RestartNo       = "no"
	RestartYes      = "yes"
	RestartIfNeeded = "if needed"
	RestartDone     = "done"
	RestartLeft     = "never"
)

// OrdinalPlan is one ordinal's line of the plan.
type OrdinalPlan struct {
	Ordinal      int    `json:"ordinal"`
	Pod          string `json:"pod"`
	PVC          string `json:"pvc"`
	StorageClass string `json:"storageClass"`
	// Requested and Capacity are the claim's current request and capacity.
	Requested string `json:"requested"`
	Capacity  string `json:"capacity"`
	Action    Action `json:"action"`
	// Restart says whether the pod is expected to be restarted.
	Restart string       `json:"restart"`
	Role    plugins.Role `json:"role,omitempty"`
	// Note explains a resize already under way.
	Note string `json:"note,omitempty"`
}

// TemplatePlan is the template step of the plan.
type TemplatePlan struct {
	// Update is set when the StatefulSet will be recreated with the new
	// size in its volumeClaimTemplate.
	Update bool `json:"update"`
	// Current is the template's request now.
	Current string `json:"current"`
	// Reason says why the template is left alone.
	Reason string `json:"reason,omitempty"`
	// ManagedBy names deployment tools whose marks are on the StatefulSet;
	// they hold the old manifest and must be updated.
	ManagedBy []string `json:"managedBy,omitempty"`
	// Verify is set when an earlier run recreated the StatefulSet and
	// only the adoption of the pods remains to be verified.
	Verify bool `json:"verify,omitempty"`
}

// Plan is what a run will do, in order.
type Plan struct {
	Namespace   string        `json:"namespace"`
	StatefulSet string        `json:"statefulSet"`
	UID         types.UID     `json:"uid,omitempty"`
	Claim       string        `json:"claim"`
	Size        string        `json:"size"`
	Restart     RestartPolicy `json:"restart"`
	// Engine is the database engine whose roles ordered the plan.
	Engine string `json:"engine,omitempty"`
	// Ordinals are in the order they will be worked on.
	Ordinals []OrdinalPlan `json:"ordinals"`
	Template TemplatePlan  `json:"template"`
	// Resumed is set when an interrupted run of the same expansion is
	// continued.
	Resumed bool `json:"resumed,omitempty"`
	// Recreate is set when the StatefulSet is missing because an earlier
	// run deleted it to update the template; this run recreates it from
	// the copy saved in the journal.
	Recreate bool     `json:"recreate,omitempty"`
	Warnings []string `json:"warnings,omitempty"`

	params Params
	engine plugins.Engine
	prev   *State
}

// Pending returns the ordinals that still need work.
func (p *Plan) Pending() []OrdinalPlan {
	var out []OrdinalPlan
	for _, o := range p.Ordinals {
		if o.Action != ActionDone {
			out = append(out, o)
		}
	}
	return out
}

// Restarts returns the pods expected to be restarted (certainly or if
// needed).
func (p *Plan) Restarts() []string {
	var out []string
	for _, o := range p.Ordinals {
		if o.Restart == RestartYes || o.Restart == RestartIfNeeded {
			out = append(out, o.Pod)
		}
	}
	return out
}

// Changes reports whether running the plan changes anything.
func (p *Plan) Changes() bool {
	return len(p.Pending()) > 0 || p.Template.Update || p.Template.Verify || p.Recreate || p.Resumed
}

// Problem is one reason to refuse the plan.
type Problem struct {
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	// Forcible problems are risks that --force accepts; the others make
	// the expansion impossible or unsafe in any case.
	Forcible bool `json:"forcible,omitempty"`
}

// PreflightError refuses a plan before anything was changed.
type PreflightError struct {
	StatefulSet string
	Problems    []Problem
	// Forced is set when --force was given (and forcible problems were
	// therefore not reported).
	Forced bool
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "expand-pvc of statefulset %s refused; nothing was changed:", e.StatefulSet)
	forcible := 0
	for _, p := range e.Problems {
		mark := ""
		if p.Forcible {
			mark = " [--force]"
			forcible++
		}
		fmt.Fprintf(&b, "\n  - %s%s", p.Message, mark)
		if p.Hint != "" {
			fmt.Fprintf(&b, "\n    %s", p.Hint)
		}
	}
	if forcible > 0 && forcible == len(e.Problems) {
		b.WriteString("\n--force goes ahead despite the problems marked [--force]; read what each risks first")
	}
	return b.String()
}

// Inputs are the objects a plan is built from; Preflight reads them.
type Inputs struct {
	StatefulSet *appsv1.StatefulSet
	Pods        []*corev1.Pod
	// PVCs are the claims of the namespace (others are ignored).
	PVCs []*corev1.PersistentVolumeClaim
	// StorageClasses are the classes found, by name; StorageClassErrors
	// holds the classes that could not be read (a missing class is simply
	// absent from both).
	StorageClasses     map[string]*storagev1.StorageClass
	StorageClassErrors map[string]error
	Quotas             []corev1.ResourceQuota
	LimitRanges        []corev1.LimitRange
	// Engine and Members order the plan; both nil without an engine.
	Engine  plugins.Engine
	Members []plugins.Member
	// EngineError says why the engine could not be asked.
	EngineError error
	// Record is the StatefulSet's journal record, if any.
	Record *journal.Record
	Now    time.Time
	// Server is what discovery said about the API server (the zero value
	// is an unknown server, taken as the newest tested minor): whether it
	// lets a request go down after a failed expansion.
	Server kube.Server

	readWarnings []string
}

// rolloutCodes are verdict reasons meaning the StatefulSet is changing.
var rolloutCodes = []status.Code{
	status.CodeRolloutInProgress, status.CodeRolloutPaused, status.CodeRolloutStuck,
	status.CodeUpdatePendingOnDelete, status.CodeNotObserved, status.CodeScaleDownInProgress,
}

// podCodes are verdict reasons about pods that are not serving.
var podCodes = []status.Code{status.CodePodNotReady, status.CodePodMissing, status.CodePodTerminating}

// BuildPlan checks the inputs against p and returns the plan, or a
// *PreflightError naming every problem. It is a pure function.
func BuildPlan(in Inputs, p Params) (*Plan, error) {
	sts := in.StatefulSet
	b := &builder{in: in, p: p, size: p.Size.String(), sts: sts}
	plan := &Plan{
		Namespace: sts.Namespace, StatefulSet: sts.Name, UID: sts.UID,
		Size: b.size, Restart: p.Restart, Ordinals: []OrdinalPlan{},
		params: p, engine: in.Engine,
	}
	b.plan = plan
	plan.Warnings = append(plan.Warnings, in.readWarnings...)
	if sts.DeletionTimestamp != nil {
		b.problem(Problem{Object: "statefulset/" + sts.Name, Message: fmt.Sprintf("statefulset %s is being deleted", sts.Name)})
	}
	tmpl := b.template()
	if tmpl == nil {
		return nil, b.refusal()
	}
	plan.Claim = tmpl.Name
	b.record()
	b.claims(tmpl)
	b.quotas()
	b.limitRanges()
	b.health()
	b.templateStep(tmpl)
	b.order()
	if len(b.problems) > 0 {
		return nil, b.refusal()
	}
	return plan, nil
}

type builder struct {
	in       Inputs
	p        Params
	size     string
	sts      *appsv1.StatefulSet
	plan     *Plan
	problems []Problem
	// increase is the storage this plan adds to requests, by class.
	increase map[string]resource.Quantity
	// inProgress are pods of ordinals an earlier run left mid-way.
	inProgress map[string]bool
}

func (b *builder) problem(p Problem) {
	if p.Forcible && b.p.Force {
		b.plan.Warnings = append(b.plan.Warnings, "--force: "+p.Message)
		return
	}
	b.problems = append(b.problems, p)
}

func (b *builder) refusal() error {
	return &PreflightError{StatefulSet: b.sts.Name, Problems: b.problems, Forced: b.p.Force}
}

func (b *builder) ns() string { return "-n " + b.sts.Namespace }

// template picks the volumeClaimTemplate.
func (b *builder) template() *corev1.PersistentVolumeClaim {
	ts := b.sts.Spec.VolumeClaimTemplates
	names := make([]string, len(ts))
	for i := range ts {
		names[i] = ts[i].Name
	}
	switch {
	case len(ts) == 0:
		b.problem(Problem{Object: "statefulset/" + b.sts.Name,
			Message: fmt.Sprintf("statefulset %s has no volumeClaimTemplates: its volumes are not per-pod claims this command can grow", b.sts.Name),
			Hint:    "grow a standalone PersistentVolumeClaim with: kubectl patch pvc NAME -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"SIZE\"}}}}'"})
		return nil
	case b.p.Claim == "" && len(ts) == 1:
		return &ts[0]
	case b.p.Claim == "":
		b.problem(Problem{Object: "statefulset/" + b.sts.Name,
			Message: fmt.Sprintf("statefulset %s has %d volumeClaimTemplates (%s): pick one with --claim", b.sts.Name, len(ts), strings.Join(names, ", ")),
			Hint:    fmt.Sprintf("e.g. --claim %s; grow the others with further runs", names[0])})
		return nil
	}
	for i := range ts {
		if ts[i].Name == b.p.Claim {
			return &ts[i]
		}
	}
	b.problem(Problem{Object: "statefulset/" + b.sts.Name,
		Message: fmt.Sprintf("statefulset %s has no volumeClaimTemplate %q; it has: %s", b.sts.Name, b.p.Claim, strings.Join(names, ", "))})
	return nil
}

// record checks the journal: another unfinished operation blocks, an
// interrupted run of another expansion must be finished first, and an
// interrupted run of this one is continued.
func (b *builder) record() {
	rec := b.in.Record
	if rec == nil {
		return
	}
	if rec.Operation != Operation {
		if !rec.Phase.Finished() {
			err := &journal.BusyError{Operation: rec.Operation, Phase: rec.Phase, Started: rec.Started, StatefulSet: b.sts.Name}
			b.problem(Problem{Object: "configmap/" + journal.ConfigMapName(b.sts.Name), Message: err.Error()})
		}
		return
	}
	var st State
	if err := rec.DecodeState(&st); err != nil {
		b.problem(Problem{Object: "configmap/" + journal.ConfigMapName(b.sts.Name),
			Message: fmt.Sprintf("the recorded expand-pvc state is not readable: %v", err),
			Hint:    fmt.Sprintf("delete the record if no expansion is under way: kubectl delete configmap %s %s", journal.ConfigMapName(b.sts.Name), b.ns())})
		return
	}
	if rec.Phase == journal.Succeeded {
		return
	}
	if !st.sameTarget(b.plan.Claim, b.size) {
		if !rec.Phase.Finished() {
			b.problem(Problem{Object: "configmap/" + journal.ConfigMapName(b.sts.Name),
				Message: fmt.Sprintf("an interrupted expand-pvc of claim %s to %s is recorded (started %s); finish it before starting another",
					st.Claim, st.Size, rec.Started.UTC().Format(time.RFC3339)),
				Hint: fmt.Sprintf("re-run: kubectl sts expand-pvc %s --claim %s --size %s %s", b.sts.Name, st.Claim, st.Size, b.ns())})
		}
		return
	}
	b.plan.prev = &st
	b.plan.Resumed = !rec.Phase.Finished()
	b.inProgress = map[string]bool{}
	for _, c := range st.Claims {
		if c.Status == ClaimPatched || c.Status == ClaimRestarting {
			b.inProgress[wait.PodName(b.sts.Name, c.Ordinal)] = true
		}
	}
}

// ordinalRange returns the desired ordinals.
func ordinalRange(sts *appsv1.StatefulSet) []int {
	start := 0
	if sts.Spec.Ordinals != nil {
		start = int(sts.Spec.Ordinals.Start)
	}
	replicas := 1
	if sts.Spec.Replicas != nil {
		replicas = int(*sts.Spec.Replicas)
	}
	out := make([]int, 0, replicas)
	for n := start; n < start+replicas; n++ {
		out = append(out, n)
	}
	return out
}

func (b *builder) claims(tmpl *corev1.PersistentVolumeClaim) {
	pvcs := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range b.in.PVCs {
		if c.Namespace == b.sts.Namespace || c.Namespace == "" {
			pvcs[c.Name] = c
		}
	}
	pods := map[string]*corev1.Pod{}
	for _, p := range b.in.Pods {
		pods[p.Name] = p
	}
	b.increase = map[string]resource.Quantity{}
	var shrinks []string
	notExpandable := map[string][]string{}
	missingClass := map[string][]string{}
	inRange := map[int]bool{}
	for _, n := range ordinalRange(b.sts) {
		inRange[n] = true
		name := wait.PVCName(tmpl.Name, b.sts.Name, n)
		podName := wait.PodName(b.sts.Name, n)
		pvc := pvcs[name]
		obj := "pvc/" + name
		switch {
		case pvc == nil:
			b.problem(Problem{Object: obj,
				Message: fmt.Sprintf("pvc %s of ordinal %d does not exist", name, n),
				Hint:    fmt.Sprintf("the StatefulSet controller creates it with pod %s; wait until kubectl sts status %s %s is healthy, then re-run", podName, b.sts.Name, b.ns())})
			continue
		case pvc.DeletionTimestamp != nil:
			b.problem(Problem{Object: obj, Message: fmt.Sprintf("pvc %s is being deleted", name)})
			continue
		case pvc.Status.Phase != corev1.ClaimBound:
			phase := string(pvc.Status.Phase)
			if phase == "" {
				phase = "Pending"
			}
			b.problem(Problem{Object: obj, Message: fmt.Sprintf("pvc %s is %s, not Bound: only a bound claim can be expanded", name, phase),
				Hint: fmt.Sprintf("see why: kubectl describe pvc %s %s", name, b.ns())})
			continue
		}
		req, hasReq := requestOf(pvc)
		capacity, hasCap := capacityOf(pvc)
		stage, detail := ResizeStage(pvc, b.p.Size)
		op := OrdinalPlan{Ordinal: n, Pod: podName, PVC: name, Requested: show(req, hasReq), Capacity: show(capacity, hasCap)}
		if pvc.Spec.StorageClassName != nil {
			op.StorageClass = *pvc.Spec.StorageClassName
		}
		if failedResize(pvc) {
			if !b.retry(&op, pvc, req, capacity, detail) {
				continue
			}
		} else if hasReq && req.Cmp(b.p.Size) > 0 {
			shrinks = append(shrinks, fmt.Sprintf("%s requests %s", name, req.String()))
			continue
		}
		switch {
		case op.Action == ActionRetry:
		case stage == StageDone && hasReq && req.Cmp(b.p.Size) == 0:
			op.Action = ActionDone
		case hasReq && req.Cmp(b.p.Size) == 0:
			op.Action = ActionContinue
			op.Note = "resize under way: " + detail
		default:
			op.Action = ActionExpand
			if hasCap && capacity.Cmp(b.p.Size) >= 0 {
				op.Note = "capacity already " + capacity.String() + ": only the request is raised"
			}
			inc := b.p.Size.DeepCopy()
			if hasReq {
				inc.Sub(req)
			}
			sum := b.increase[op.StorageClass]
			sum.Add(inc)
			b.increase[op.StorageClass] = sum
		}
		op.Restart = b.restartExpectation(op, pods[podName])
		if op.Action != ActionDone {
			switch sc := op.StorageClass; {
			case sc == "":
				missingClass[""] = append(missingClass[""], name)
			case b.in.StorageClassErrors[sc] != nil:
				b.plan.Warnings = append(b.plan.Warnings, fmt.Sprintf("cannot read StorageClass %s (%v) to check that it allows expansion; the API server will refuse the first change if it does not", sc, b.in.StorageClassErrors[sc]))
			case b.in.StorageClasses[sc] == nil:
				missingClass[sc] = append(missingClass[sc], name)
			case !allowsExpansion(b.in.StorageClasses[sc]):
				notExpandable[sc] = append(notExpandable[sc], name)
			}
		}
		b.plan.Ordinals = append(b.plan.Ordinals, op)
	}
	if len(shrinks) > 0 {
		b.problem(Problem{Object: "statefulset/" + b.sts.Name,
			Message: fmt.Sprintf("--size %s is smaller than what is already requested (%s): a volume cannot be shrunk", b.size, strings.Join(shrinks, ", ")),
			Hint:    "pick a size at least as large as every current request; to use less space, copy the data to new, smaller claims"})
	}
	for _, sc := range sortedKeys(missingClass) {
		if sc == "" {
			b.problem(Problem{Message: fmt.Sprintf("pvc %s %s no StorageClass: Kubernetes expands only claims whose StorageClass allows it",
				strings.Join(missingClass[sc], ", "), verb(len(missingClass[sc]), "has", "have"))})
			continue
		}
		b.problem(Problem{Object: "storageclass/" + sc,
			Message: fmt.Sprintf("StorageClass %s of pvc %s does not exist, so nothing allows the expansion", sc, strings.Join(missingClass[sc], ", ")),
			Hint:    "list the classes with: kubectl get storageclass"})
	}
	for _, sc := range sortedKeys(notExpandable) {
		b.problem(Problem{Object: "storageclass/" + sc,
			Message: fmt.Sprintf("StorageClass %s does not allow volume expansion (allowVolumeExpansion is not true), so the API server refuses to grow pvc %s",
				sc, strings.Join(notExpandable[sc], ", ")),
			Hint: fmt.Sprintf("if its storage driver can expand volumes, an administrator can allow it: kubectl patch storageclass %s -p '{\"allowVolumeExpansion\":true}'; otherwise copy the data to new, larger claims", sc)})
	}
	b.leftovers(tmpl, pvcs, inRange)
}

// retry plans a claim whose earlier resize is infeasible: a new size
// between its capacity and the failed request retries the resize with a
// lowered request; anything else is refused with the ways out.
func (b *builder) retry(op *OrdinalPlan, pvc *corev1.PersistentVolumeClaim, req, capacity resource.Quantity, detail string) bool {
	name := pvc.Name
	if b.p.Size.Cmp(req) < 0 && !b.in.Server.LowersRequestAfterFailedExpansion() {
		b.problem(Problem{Object: "pvc/" + name,
			Message: fmt.Sprintf("an earlier resize of pvc %s to %s failed (%s), and this cluster (Kubernetes %s) does not let a request go down: --size %s is below it",
				name, req.String(), detail, b.in.Server.GitVersion, b.size),
			Hint: fmt.Sprintf("lowering the request after a failed expansion needs Kubernetes 1.32 or later (RecoverVolumeExpansionFailure, on by default from 1.32, GA in 1.34); "+
				"here only a --size of at least %s can be tried, or the data copied to new claims (see docs/expand-pvc.md)", req.String())})
		return false
	}
	hint := fmt.Sprintf("the storage does not retry the same request. Kubernetes 1.32 or later (RecoverVolumeExpansionFailure, on by default from 1.32, GA in 1.34) lets the request go down to any size above the capacity %s: "+
		"run again with a --size the storage can provide, above %s and below %s, to retry at that size. The request can never go back to %s or below; "+
		"on older clusters it cannot go down at all (see docs/expand-pvc.md)",
		capacity.String(), capacity.String(), req.String(), capacity.String())
	switch {
	case b.p.Size.Cmp(capacity) <= 0:
		b.problem(Problem{Object: "pvc/" + name,
			Message: fmt.Sprintf("an earlier resize of pvc %s to %s failed (%s), and --size %s is not above its capacity %s", name, req.String(), detail, b.size, capacity.String()),
			Hint:    hint})
		return false
	case b.p.Size.Cmp(req) == 0:
		b.problem(Problem{Object: "pvc/" + name,
			Message: fmt.Sprintf("an earlier resize of pvc %s to %s failed: %s", name, req.String(), detail),
			Hint:    hint})
		return false
	}
	op.Action = ActionRetry
	op.Note = fmt.Sprintf("retries a failed resize to %s (%s)", req.String(), detail)
	if b.p.Size.Cmp(req) > 0 {
		op.Action = ActionExpand
		op.Note = fmt.Sprintf("raises the request of a failed resize to %s (%s)", req.String(), detail)
	}
	return true
}

func (b *builder) restartExpectation(op OrdinalPlan, pod *corev1.Pod) string {
	if prev := b.plan.prev.find(op.PVC); prev != nil && prev.RestartedPod != "" && (pod == nil || pod.UID != prev.RestartedPod) {
		return RestartDone
	}
	switch {
	case op.Action == ActionDone:
		return RestartNo
	case b.p.Restart == RestartNever:
		return RestartLeft
	case pod == nil:
		return RestartNo
	case b.p.Restart == RestartAlways:
		return RestartYes
	}
	return RestartIfNeeded
}

// leftovers warns about claims of the template outside the desired range:
// a scale-up reattaches them at their old size.
func (b *builder) leftovers(tmpl *corev1.PersistentVolumeClaim, pvcs map[string]*corev1.PersistentVolumeClaim, inRange map[int]bool) {
	var names []string
	for name, c := range pvcs {
		n, ok := wait.PodOrdinal(tmpl.Name+"-"+b.sts.Name, name)
		if !ok || inRange[n] {
			continue
		}
		if req, ok := requestOf(c); ok && req.Cmp(b.p.Size) >= 0 {
			continue
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	b.plan.Warnings = append(b.plan.Warnings, fmt.Sprintf(
		"%s outside the %d desired ordinals %s not expanded: a scale-up reattaches %s at the old size (delete %s once the data is no longer needed: kubectl sts cleanup-pvcs %s %s)",
		strings.Join(names, ", "), len(inRange), verb(len(names), "is", "are"), verb(len(names), "it", "them"), verb(len(names), "it", "them"), b.sts.Name, b.ns()))
}

func allowsExpansion(sc *storagev1.StorageClass) bool {
	return sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
}

// quotas refuses an expansion that a ResourceQuota would stop half-way.
func (b *builder) quotas() {
	var total resource.Quantity
	for _, q := range b.increase {
		total.Add(q)
	}
	if total.IsZero() {
		return
	}
	for _, q := range b.in.Quotas {
		hardLimits := q.Status.Hard
		if len(hardLimits) == 0 {
			hardLimits = q.Spec.Hard
		}
		for _, key := range sortedKeys(hardLimits) {
			hard := hardLimits[corev1.ResourceName(key)]
			var inc resource.Quantity
			switch {
			case key == string(corev1.ResourceRequestsStorage):
				inc = total
			case strings.HasSuffix(key, storageClassQuotaSuffix):
				inc = b.increase[strings.TrimSuffix(key, storageClassQuotaSuffix)]
			default:
				continue
			}
			if inc.IsZero() {
				continue
			}
			used := q.Status.Used[corev1.ResourceName(key)]
			after := used.DeepCopy()
			after.Add(inc)
			if after.Cmp(hard) > 0 {
				b.problem(Problem{Object: "resourcequota/" + q.Name,
					Message: fmt.Sprintf("ResourceQuota %s allows %s %s; %s is used and this expansion adds %s, which would exceed it (the API server would refuse a claim half-way)",
						q.Name, key, hard.String(), used.String(), inc.String()),
					Hint: fmt.Sprintf("ask for a larger quota (kubectl describe resourcequota %s %s), or pick a smaller --size", q.Name, b.ns())})
			}
		}
	}
}

const storageClassQuotaSuffix = ".storageclass.storage.k8s.io/requests.storage"

// limitRanges refuses a size above a LimitRange's maximum for claims.
func (b *builder) limitRanges() {
	if len(b.increase) == 0 {
		return
	}
	for _, lr := range b.in.LimitRanges {
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypePersistentVolumeClaim {
				continue
			}
			if max, ok := item.Max[corev1.ResourceStorage]; ok && b.p.Size.Cmp(max) > 0 {
				b.problem(Problem{Object: "limitrange/" + lr.Name,
					Message: fmt.Sprintf("LimitRange %s allows claims of at most %s; --size %s is larger", lr.Name, max.String(), b.size),
					Hint:    fmt.Sprintf("ask for a larger limit (kubectl describe limitrange %s %s), or pick a smaller --size", lr.Name, b.ns())})
			}
		}
	}
}

// health refuses to work on a StatefulSet that is changing or has pods
// down, unless forced: a restart on top of an unavailable pod can cost a
// quorum, and recreating the StatefulSet mid-rollout resets its revisions.
func (b *builder) health() {
	if b.plan.prev != nil && b.plan.prev.Template.pending() {
		return
	}
	report := status.Summarize(b.sts, b.in.Pods, b.in.PVCs, b.in.Now, status.Options{})
	for _, r := range report.Verdict.Reasons {
		switch {
		case slices.Contains(rolloutCodes, r.Code):
			b.problem(Problem{Object: r.Object, Forcible: true,
				Message: "the StatefulSet is changing: " + r.Message,
				Hint: "let it finish (kubectl sts status " + b.sts.Name + " " + b.ns() + "), then re-run. --force risks: recreating the StatefulSet for the template step " +
					"resets its rollout status, so pods held back by a partition may be counted as updated; use --no-update-template with --force to avoid that"})
		case slices.Contains(podCodes, r.Code):
			if b.affectsOnlyInProgress(r.Object) {
				continue
			}
			b.problem(Problem{Object: r.Object, Forcible: true,
				Message: r.Message,
				Hint: "wait until every pod is Ready, then re-run. --force risks: restarting another pod while this one is down can cost the database its quorum " +
					"or its only healthy replica"})
		}
	}
}

// affectsOnlyInProgress reports whether a pod reason concerns only pods of
// ordinals an interrupted run was working on (their restart is expected).
func (b *builder) affectsOnlyInProgress(object string) bool {
	if len(b.inProgress) == 0 || object == "" {
		return false
	}
	for _, o := range strings.Split(object, ",") {
		if !b.inProgress[strings.TrimPrefix(o, "pod/")] {
			return false
		}
	}
	return true
}

func (b *builder) templateStep(tmpl *corev1.PersistentVolumeClaim) {
	t := &b.plan.Template
	cur, ok := templateRequest(tmpl)
	t.Current = show(cur, ok)
	if prev := b.plan.prev; prev != nil && prev.Template.pending() && prev.Template.NewUID != "" && prev.Template.NewUID == b.sts.UID {
		t.Verify = true
		t.Reason = "an earlier run recreated the StatefulSet; the adoption of its pods is verified"
		return
	}
	switch {
	case !b.p.UpdateTemplate:
		t.Reason = fmt.Sprintf("--no-update-template: the template keeps %s, so pods of new ordinals get %s claims", t.Current, t.Current)
		return
	case ok && cur.Cmp(b.p.Size) == 0:
		t.Reason = "the template already requests " + t.Current
		return
	case ok && cur.Cmp(b.p.Size) > 0:
		t.Reason = fmt.Sprintf("the template already requests %s, more than %s; it is left alone", t.Current, b.size)
		return
	}
	t.Update = true
	t.ManagedBy = managedBy(b.sts)
	if ref := metav1.GetControllerOf(b.sts); ref != nil {
		b.problem(Problem{Object: "statefulset/" + b.sts.Name,
			Message: fmt.Sprintf("statefulset %s is controlled by %s %s: recreating it to update its template would fight that controller", b.sts.Name, ref.Kind, ref.Name),
			Hint:    fmt.Sprintf("change the size in the %s instead, or run with --no-update-template to grow only the existing claims", ref.Kind)})
	}
	var foreign []string
	for _, f := range b.sts.Finalizers {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			foreign = append(foreign, f)
		}
	}
	// A StatefulSet being deleted is refused for that already; the
	// finalizers' hint would only lead to that refusal.
	if len(foreign) > 0 && b.sts.DeletionTimestamp == nil {
		b.problem(Problem{Object: "statefulset/" + b.sts.Name,
			Message: fmt.Sprintf("statefulset %s has finalizers (%s) that would hold its deletion, so it cannot be recreated to update its template", b.sts.Name, strings.Join(foreign, ", ")),
			Hint:    "run with --no-update-template to grow only the existing claims"})
	}
}

// managedBy names the deployment tools whose marks are on sts.
func managedBy(sts *appsv1.StatefulSet) []string {
	var tools []string
	add := func(t string) {
		if !slices.Contains(tools, t) {
			tools = append(tools, t)
		}
	}
	if v := sts.Labels["app.kubernetes.io/managed-by"]; v != "" && v != journal.ManagedBy {
		add(v)
	}
	for k := range sts.Annotations {
		switch {
		case strings.HasPrefix(k, "meta.helm.sh/"):
			add("Helm")
		case strings.HasPrefix(k, "argocd.argoproj.io/"):
			add("Argo CD")
		case strings.HasPrefix(k, "kustomize.toolkit.fluxcd.io/"), strings.HasPrefix(k, "helm.toolkit.fluxcd.io/"):
			add("Flux")
		}
	}
	for k := range sts.Labels {
		switch {
		case k == "argocd.argoproj.io/instance":
			add("Argo CD")
		case strings.HasPrefix(k, "kustomize.toolkit.fluxcd.io/"), strings.HasPrefix(k, "helm.toolkit.fluxcd.io/"):
			add("Flux")
		}
	}
	sort.Strings(tools)
	return tools
}

// order sorts the ordinals: replicas first and the primary last when an
// engine named one, else the highest ordinal first.
func (b *builder) order() {
	b.plan.Engine = ""
	if b.in.Engine != nil {
		b.plan.Engine = b.in.Engine.Name()
	}
	if b.in.EngineError != nil {
		// The primary is restarted last, so it must be known before the
		// first change; --force goes ahead in ordinal order.
		if len(b.plan.Pending()) > 0 {
			b.problem(Problem{Object: "statefulset/" + b.sts.Name, Forcible: true,
				Message: fmt.Sprintf("the %s engine cannot tell which member is the primary (%v), and expand-pvc restarts the primary last: with --force it goes highest ordinal first and does not consult the engine again", b.plan.Engine, b.in.EngineError),
				Hint:    fmt.Sprintf("check the database (kubectl sts status %s %s), or pass --engine none to expand without the database's roles", b.sts.Name, b.ns())})
		}
		// An engine that cannot be read now would only stall the health
		// checks after each restart.
		b.plan.engine = nil
	}
	ordinals := make([]int, len(b.plan.Ordinals))
	byOrdinal := map[int]OrdinalPlan{}
	for i, o := range b.plan.Ordinals {
		ordinals[i] = o.Ordinal
		if m, ok := plugins.FindMember(b.in.Members, o.Ordinal); ok {
			o.Role = m.Role
		}
		byOrdinal[o.Ordinal] = o
	}
	sorted, note := Order(ordinals, b.in.Members)
	if note != "" && b.in.Engine != nil {
		b.plan.Warnings = append(b.plan.Warnings, note)
	}
	b.plan.Ordinals = b.plan.Ordinals[:0]
	for _, n := range sorted {
		b.plan.Ordinals = append(b.plan.Ordinals, byOrdinal[n])
	}
}

func sortedKeys[K ~string, V any](m map[K]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	return keys
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
