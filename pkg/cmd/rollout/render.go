package rollout

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
)

// planSummary is the plan in one line, for the JSON event stream.
func planSummary(pv *rollout.Preview) string {
	parts := make([]string, 0, len(pv.Plan.Steps))
	for _, s := range pv.Plan.Steps {
		parts = append(parts, fmt.Sprintf("%d", s.Partition))
	}
	if pv.Mode == rollout.ModeUndo {
		return fmt.Sprintf("roll back to revision %s", pv.From)
	}
	return fmt.Sprintf("%s rollout of revision %s in %d steps, partitions %s", pv.Mode, revisionLabel(pv.To), len(pv.Plan.Steps), strings.Join(parts, ", "))
}

// writePlan renders a preview for people.
func writePlan(w io.Writer, t ui.Theme, pv *rollout.Preview, dryRun bool) {
	title := "Rollout plan"
	if pv.Mode == rollout.ModeUndo {
		title = "Rollback plan"
	}
	if dryRun {
		title += " (dry run: nothing is changed)"
	}
	fmt.Fprintf(w, "%s for statefulset %s in namespace %s\n", t.Bold(title), pv.StatefulSet, pv.Namespace)
	if pv.Record != nil {
		r := pv.Record
		fmt.Fprintf(w, "  recorded:   %s rollout started %s, %s, step %d of %d\n", r.Phase, r.Started.UTC().Format(time.RFC3339), r.Stage, r.Step, r.Steps)
	}
	if pv.Mode == rollout.ModeUndo {
		fmt.Fprintf(w, "  revision:   %s -> %s (previous)\n", revisionLabel(pv.To), pv.From)
		fmt.Fprintf(w, "  action:     %s\n", pv.OnFailure)
		if len(pv.Stuck) > 0 {
			fmt.Fprintf(w, "  stuck pods: %s (deleted at once; the controller replaces the others in order)\n", strings.Join(pv.Stuck, ", "))
		}
		return
	}
	fmt.Fprintf(w, "  mode:       %s\n", modeText(pv))
	to := pv.To
	if to == "" {
		to = "new (named by the controller when applied)"
	}
	fmt.Fprintf(w, "  revision:   %s -> %s\n", pv.From, to)
	for _, c := range pv.Changes {
		fmt.Fprintf(w, "  change:     %s\n", c)
	}
	start := pv.Plan.OrdinalsStart
	fmt.Fprintf(w, "  replicas:   %d (ordinals %d..%d), podManagementPolicy %s\n", pv.Plan.Replicas, start, start+pv.Plan.Replicas-1, pv.PodManagementPolicy)
	part := fmt.Sprintf("%d now", pv.Partition)
	if pv.Hold > 0 {
		part += fmt.Sprintf(", raised to %d first to take over", pv.Hold)
	} else if pv.Mode == rollout.ModeChange {
		part += fmt.Sprintf(", %d with the new template", pv.Plan.Replicas)
	}
	fmt.Fprintf(w, "  partition:  %s, %d when done\n", part, pv.FinalPartition)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tUPDATED\tPARTITION\tPODS")
	for i, s := range pv.Plan.Steps {
		note := ""
		switch {
		case i < pv.Done:
			note = "  (done)"
		case containsInt(pv.PauseAfter, i+1):
			note = "  then pause"
		}
		fmt.Fprintf(tw, "  %d\t%d/%d\t%d\t%s%s\n", i+1, s.Updated, pv.Plan.Replicas, s.Partition, strings.Join(s.Pods, ", "), note)
	}
	_ = tw.Flush()
	if len(pv.Gates) > 0 {
		fmt.Fprintln(w, "  gates after each step:")
		for _, g := range pv.Gates {
			fmt.Fprintf(w, "    - %s\n", g)
		}
	}
	if pv.Pacing.Message != "" {
		fmt.Fprintf(w, "  pacing:     %s\n", pv.Pacing.Message)
	}
	if pv.Leader != nil {
		fmt.Fprintf(w, "  leader:     %s\n", pv.Leader.Message)
	}
	fmt.Fprintf(w, "  on failure: %s\n", pv.OnFailure)
	for _, n := range pv.Plan.Notes {
		fmt.Fprintf(w, "  note:       %s\n", n)
	}
	for _, warn := range pv.Warnings {
		fmt.Fprintf(w, "  %s %s\n", t.Warn("warning:"), warn)
	}
}

func modeText(pv *rollout.Preview) string {
	switch pv.Mode {
	case rollout.ModePending:
		return "roll out the pending revision (template already applied, partition holding)"
	case rollout.ModeChange:
		return "apply the change with the partition holding every pod, then roll it out"
	case rollout.ModeTakeOver:
		return "take over the rollout the controller has started"
	case rollout.ModeResume:
		return "resume the recorded rollout"
	}
	return string(pv.Mode)
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// writeReport renders `rollout status`.
func writeReport(w io.Writer, t ui.Theme, rep *rollout.Report, now time.Time) {
	rec := rep.Record
	st := rep.State
	fmt.Fprintf(w, "%s of statefulset %s: %s\n", t.Bold(rec.Operation), rec.StatefulSet, phaseText(t, rec.Phase))
	fmt.Fprintf(w, "  started:    %s\n", rec.Started.UTC().Format(time.RFC3339))
	switch {
	case rec.Holder != "" && rep.Live:
		fmt.Fprintf(w, "  held by:    %s (heartbeat %s ago)\n", rec.Holder, now.Sub(rec.Heartbeat).Round(time.Second))
	case rec.Holder != "":
		fmt.Fprintf(w, "  held by:    %s (heartbeat %s ago: expired, the next run takes over)\n", rec.Holder, now.Sub(rec.Heartbeat).Round(time.Second))
	case !rec.Phase.Finished():
		fmt.Fprintln(w, "  held by:    nobody (run kubectl sts rollout resume to continue)")
	}
	if st != nil {
		fmt.Fprintf(w, "  revision:   %s -> %s\n", st.From, revisionLabel(st.To))
		fmt.Fprintf(w, "  stage:      %s\n", st.Stage)
		if st.PausedAfter > 0 {
			fmt.Fprintf(w, "  paused:     after step %d\n", st.PausedAfter)
		}
		if st.Rollback != nil {
			fmt.Fprintf(w, "  rollback:   %s\n", st.Rollback.Reason)
			if len(st.Rollback.Deleted) > 0 {
				fmt.Fprintf(w, "  deleted:    %s\n", strings.Join(st.Rollback.Deleted, ", "))
			}
		}
		if len(st.Plan.Steps) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  STEP\tPARTITION\tPODS\tSTATE")
			for i, s := range st.Plan.Steps {
				fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\n", i+1, s.Partition, strings.Join(s.Pods, ", "), stepState(st, i))
			}
			_ = tw.Flush()
		}
	}
	if len(rec.History) > 0 {
		fmt.Fprintln(w, "  history:")
		for _, h := range rec.History {
			fmt.Fprintf(w, "    %s  %s\n", h.Time.UTC().Format(time.RFC3339), h.Message)
		}
	}
}

func phaseText(t ui.Theme, p interface{ Finished() bool }) string {
	s := fmt.Sprint(p)
	switch s {
	case "Succeeded":
		return t.Good(s)
	case "Failed", "RolledBack", "Aborted":
		return t.Bad(s)
	}
	return t.Warn(s)
}

func stepState(st *rollout.State, i int) string {
	if i >= len(st.Steps) {
		return "pending"
	}
	s := st.Steps[i]
	switch {
	case s.Skipped:
		return "already updated"
	case !s.Finished.IsZero():
		return "passed " + s.Finished.UTC().Format(time.RFC3339)
	case !s.Started.IsZero() && st.Stage == rollout.StageRollback:
		return "failed"
	case !s.Started.IsZero():
		return "running since " + s.Started.UTC().Format(time.RFC3339)
	}
	return "pending"
}
