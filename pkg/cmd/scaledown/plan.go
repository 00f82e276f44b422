package scaledown

import (
	"fmt"
	"io"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/scaledown"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// withProgress renders the workflow's events for the duration of run.
func (o *Options) withProgress(run func(sink progress.Sink) error) error {
	pp, err := o.ProgressPrinter(o.Output)
	if err != nil {
		return err
	}
	pp.Start()
	defer pp.Stop()
	return run(pp)
}

// printPlan shows the plan: -o json marshals it, text lists every pod and
// PVC that goes and what stays.
func (o *Options) printPlan(p *scaledown.Plan) {
	if p == nil {
		return
	}
	switch {
	case o.Output.JSON():
		p.DryRun = o.DryRun
		o.printJSON(p)
		return
	case !o.Output.Human():
		// A kubectl printer prints the plan or the result at the end on
		// standard output; a question about the plan shows it on
		// standard error.
		if !o.Yes && !o.DryRun {
			writePlan(o.ErrOut, ui.NewTheme(false), p)
		}
		return
	}
	theme, err := o.Theme()
	if err != nil {
		theme = ui.NewTheme(false)
	}
	writePlan(o.Out, theme, p)
}

func writePlan(w io.Writer, t ui.Theme, p *scaledown.Plan) {
	ns := p.Namespace
	if p.Operation == scaledown.CleanupOperation && !p.CleanupSlots {
		fmt.Fprintf(w, "%s delete the PVCs of statefulset %s (namespace %s) left over from removed ordinals; it has %d replicas\n",
			t.Bold("Plan:"), p.StatefulSet, ns, p.Current)
	} else if p.Operation == scaledown.CleanupOperation {
		fmt.Fprintf(w, "%s clean up what removed ordinals left of statefulset %s (namespace %s); it has %d replicas\n",
			t.Bold("Plan:"), p.StatefulSet, ns, p.Current)
	} else {
		fmt.Fprintf(w, "%s scale down statefulset %s (namespace %s) from %d to %d replicas\n",
			t.Bold("Plan:"), p.StatefulSet, ns, p.From, p.To)
	}
	if p.Resumed {
		done := 0
		for _, s := range p.Steps {
			if s.Done {
				done++
			}
		}
		fmt.Fprintf(w, "  %s an interrupted run is resumed: %d of %d steps were done; it now has %d replicas\n", t.Bold("resume:"), done, len(p.Steps), p.Current)
	}
	if p.Operation != scaledown.CleanupOperation {
		engine := "none (Kubernetes steps only)"
		if p.Engine != "" {
			engine = p.Engine
			if p.Primary != "" {
				engine += " (primary: " + p.Primary + ")"
			}
		}
		fmt.Fprintf(w, "  %s  %s\n", t.Bold("engine:"), engine)
	}
	fmt.Fprintf(w, "  %s  %s\n", t.Bold("pvcs:  "), describeAction(p))
	if p.Stay != "" {
		fmt.Fprintf(w, "  %s  %s and their PVCs are not touched\n", t.Bold("stays: "), p.Stay)
	}
	if len(p.Steps) > 0 {
		if p.Operation == scaledown.CleanupOperation {
			fmt.Fprintf(w, "  %s\n", t.Bold("goes, one ordinal at a time:"))
		} else {
			fmt.Fprintf(w, "  %s\n", t.Bold("goes, one ordinal at a time, in this order:"))
		}
	}
	for i, s := range p.Steps {
		if s.Done {
			fmt.Fprintf(w, "    %d. %s%s\n", i+1, s.Pod, t.Faint(": done by the interrupted run"))
			continue
		}
		var parts []string
		if p.Operation == scaledown.CleanupOperation {
			parts = append(parts, fmt.Sprintf("ordinal %d (no pod)", s.Ordinal))
		} else {
			pod := "pod " + s.Pod
			if !s.PodExists {
				pod += " (already gone)"
			}
			parts = append(parts, pod)
		}
		for _, c := range s.PVCs {
			size := ""
			if c.Capacity != "" {
				size = " " + c.Capacity
			}
			parts = append(parts, fmt.Sprintf("pvc %s%s → %s", c.Name, size, actionWord(c.Action)))
		}
		if len(s.PVCs) == 0 {
			parts = append(parts, "no pvcs")
		}
		if len(s.Slots) > 0 {
			parts = append(parts, "slots "+strings.Join(s.Slots, ", "))
		}
		line := fmt.Sprintf("    %d. %s", i+1, strings.Join(parts, ", "))
		switch {
		case s.Stage != "":
			line += t.Faint("  [interrupted after stage " + string(s.Stage) + "]")
		}
		fmt.Fprintln(w, line)
	}
	if p.CleanupSlots && p.Engine != "" {
		writeLeftovers(w, t, p)
	}
	if len(p.OtherLeftovers) > 0 {
		fmt.Fprintf(w, "  %s %s (left by earlier scale-downs; not touched; delete them with: kubectl sts cleanup-pvcs %s -n %s)\n",
			t.Bold("other leftover pvcs:"), strings.Join(p.OtherLeftovers, ", "), p.StatefulSet, ns)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintln(w, t.Warn("warning: "+warn))
	}
}

func describeAction(p *scaledown.Plan) string {
	switch p.PVC {
	case scaledown.PVCKeep:
		return "keep (a later scale-up reattaches them with their old data)"
	case scaledown.PVCDelete:
		return "delete, each only once its pod is gone"
	case scaledown.PVCSnapshot:
		return fmt.Sprintf("snapshot (class %s), wait until readyToUse, then delete", p.SnapshotClass)
	case scaledown.PVCByKubernetes:
		return "deleted by Kubernetes itself (persistentVolumeClaimRetentionPolicy.whenScaled: Delete)"
	}
	return string(p.PVC)
}

func actionWord(a scaledown.PVCAction) string {
	switch a {
	case scaledown.PVCKeep:
		return "keep"
	case scaledown.PVCDelete:
		return "delete"
	case scaledown.PVCSnapshot:
		return "snapshot, then delete"
	case scaledown.PVCByKubernetes:
		return "deleted by Kubernetes"
	}
	return string(a)
}

// writeLeftovers lists the replication slots removed members left: those
// dropped, and those that stay with the reason.
func writeLeftovers(w io.Writer, t ui.Theme, p *scaledown.Plan) {
	if len(p.Leftovers) == 0 {
		fmt.Fprintf(w, "  %s none left by removed ordinals (%s)\n", t.Bold("slots:"), p.Engine)
		return
	}
	fmt.Fprintf(w, "  %s\n", t.Bold("slots of removed members ("+p.Engine+"):"))
	for _, l := range p.Leftovers {
		what := l.Kind + " " + l.Name
		if l.On != "" {
			what += " on " + l.On
		}
		if l.RetainedBytes != nil {
			what += fmt.Sprintf(", retaining %s of WAL", plugins.Bytes(*l.RetainedBytes))
		}
		if l.Drop {
			fmt.Fprintf(w, "    - %s → drop (%s)\n", what, l.Reason)
		} else {
			fmt.Fprintf(w, "    - %s → %s\n", what, t.Warn("left: "+l.Reason))
		}
	}
}
