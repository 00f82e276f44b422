package rollout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// StepSpec is one entry of --steps: how many replicas should run the new
// revision after the step, as a count or a percentage.
type StepSpec struct {
	Value   int  `json:"value"`
	Percent bool `json:"percent,omitempty"`
}

func (s StepSpec) String() string {
	if s.Percent {
		return strconv.Itoa(s.Value) + "%"
	}
	return strconv.Itoa(s.Value)
}

// ParseSteps parses a --steps list such as "1,25%,50%,100%". Items may be
// given as separate values or comma-separated in one. It checks what can
// be checked without the replica count: positive values, percentages up
// to 100, each kind increasing. An empty list is the default plan.
func ParseSteps(items []string) ([]StepSpec, error) {
	var out []StepSpec
	for _, item := range items {
		for _, raw := range strings.Split(item, ",") {
			raw = strings.TrimSpace(raw)
			if raw == "" {
				return nil, fmt.Errorf("--steps has an empty item in %q: give counts or percentages separated by commas, e.g. 1,25%%,50%%,100%%", item)
			}
			s := StepSpec{}
			num := raw
			if strings.HasSuffix(raw, "%") {
				s.Percent = true
				num = strings.TrimSuffix(raw, "%")
			}
			n, err := strconv.Atoi(num)
			if err != nil {
				return nil, fmt.Errorf("--steps item %q is neither a count (3) nor a percentage (25%%)", raw)
			}
			if n <= 0 {
				return nil, fmt.Errorf("--steps item %q must be greater than zero", raw)
			}
			if s.Percent && n > 100 {
				return nil, fmt.Errorf("--steps item %q is over 100%%", raw)
			}
			s.Value = n
			out = append(out, s)
		}
	}
	var lastCount, lastPct int
	for _, s := range out {
		last := &lastCount
		if s.Percent {
			last = &lastPct
		}
		if s.Value <= *last {
			return nil, fmt.Errorf("--steps %s is not increasing: each step must have more pods on the new revision than the one before", joinSpecs(out))
		}
		*last = s.Value
	}
	return out, nil
}

func joinSpecs(specs []StepSpec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

// Step is one stage of a plan: lower the partition, then pass the gates.
type Step struct {
	// Updated is how many pods run the new revision after the step.
	Updated int32 `json:"updated"`
	// Partition is the spec.updateStrategy.rollingUpdate.partition of the
	// step: pods with ordinal >= ordinals.start + Partition move.
	Partition int32 `json:"partition"`
	// Ordinals are the ordinals this step moves, highest first.
	Ordinals []int32 `json:"ordinals"`
	// Pods are the names of those pods.
	Pods []string `json:"pods"`
	// Spec is the --steps item the step came from ("" for default steps).
	Spec string `json:"spec,omitempty"`
}

// Plan is the staged rollout of one StatefulSet.
type Plan struct {
	StatefulSet string `json:"statefulSet"`
	Replicas    int32  `json:"replicas"`
	// OrdinalsStart is spec.ordinals.start.
	OrdinalsStart int32  `json:"ordinalsStart,omitempty"`
	Steps         []Step `json:"steps"`
	// Notes explain adjustments, e.g. steps merged by rounding.
	Notes []string `json:"notes,omitempty"`
	// MaxUnavailable is how many pods the controller may take down at
	// once, as read back from the server (nil in records of older runs).
	MaxUnavailable *MaxUnavailable `json:"maxUnavailable,omitempty"`
}

// BuildPlan turns step specs into partitions for a StatefulSet with
// replicas pods starting at ordinal start. No specs gives the default:
// one canary pod, then one pod at a time. Percentages round up, so every
// step moves at least one pod; steps that round to the same count are
// merged. The last step must reach all replicas.
func BuildPlan(name string, replicas, start int32, specs []StepSpec) (Plan, error) {
	p := Plan{StatefulSet: name, Replicas: replicas, OrdinalsStart: start}
	if replicas <= 0 {
		return p, fmt.Errorf("statefulset %s has 0 replicas: there are no pods to roll out", name)
	}
	if len(specs) == 0 {
		for n := int32(1); n <= replicas; n++ {
			specs = append(specs, StepSpec{Value: int(n)})
		}
	}
	last := specs[len(specs)-1]
	if !(last.Percent && last.Value == 100) && !(!last.Percent && int32(last.Value) == replicas) {
		return p, fmt.Errorf("--steps %s does not end at 100%% (or %d, the replica count): the last step must update every pod", joinSpecs(specs), replicas)
	}
	prev := int32(0)
	for _, s := range specs {
		n := countOf(s, replicas)
		if !s.Percent && n > replicas {
			return p, fmt.Errorf("--steps item %s is more than the %d replicas of statefulset %s", s, replicas, name)
		}
		switch {
		case n < prev:
			return p, fmt.Errorf("--steps %s is not increasing for %d replicas: %s means %d pods, fewer than the %d of the step before", joinSpecs(specs), replicas, s, n, prev)
		case n == prev:
			p.Notes = append(p.Notes, fmt.Sprintf("step %s means %d of %d pods, as does the step before; merged", s, n, replicas))
			continue
		}
		step := Step{Updated: n, Partition: replicas - n, Spec: s.String()}
		for idx := replicas - prev - 1; idx >= replicas-n; idx-- {
			ord := start + idx
			step.Ordinals = append(step.Ordinals, ord)
			step.Pods = append(step.Pods, wait.PodName(name, int(ord)))
		}
		p.Steps = append(p.Steps, step)
		prev = n
	}
	return p, nil
}

// countOf converts a spec into a pod count; percentages round up.
func countOf(s StepSpec, replicas int32) int32 {
	if !s.Percent {
		return int32(s.Value)
	}
	return int32((int64(s.Value)*int64(replicas) + 99) / 100)
}

// UpdatedPods returns the pods a partition moves: ordinals from start +
// partition up to the last, highest first.
func UpdatedPods(name string, replicas, start, partition int32) []string {
	var out []string
	for idx := replicas - 1; idx >= partition && idx >= 0; idx-- {
		out = append(out, wait.PodName(name, int(start+idx)))
	}
	return out
}

// FirstPending returns the index of the first step that moves pods beyond
// the already updated count, or len(steps) if none.
func (p Plan) FirstPending(updated int32) int {
	for i, s := range p.Steps {
		if s.Updated > updated {
			return i
		}
	}
	return len(p.Steps)
}

// Equal reports whether two plans move the same pods in the same steps.
func (p Plan) Equal(o Plan) bool {
	if p.Replicas != o.Replicas || p.OrdinalsStart != o.OrdinalsStart || len(p.Steps) != len(o.Steps) {
		return false
	}
	for i := range p.Steps {
		if p.Steps[i].Partition != o.Steps[i].Partition {
			return false
		}
	}
	return true
}
