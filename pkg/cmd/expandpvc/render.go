package expandpvc

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
)

// serverDryRunWrites are the claim patches the preflight sent with
// dryRun=All and the API server accepted (a refusal fails the preflight).
func serverDryRunWrites(plan *expand.Plan) []kube.DryRunWrite {
	writes := []kube.DryRunWrite{}
	for _, o := range plan.Ordinals {
		if o.Action == expand.ActionExpand {
			writes = append(writes, kube.NewDryRunWrite(fmt.Sprintf("patch pvc %s (request %s)", o.PVC, plan.Size), nil))
		}
	}
	return writes
}

// printPlan writes the plan: a table on text output, one JSON line on -o
// json.
// planDocument is the plan as -o json and the kubectl printers show it.
type planDocument struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Plan       *expand.Plan `json:"plan"`
	DryRun     bool         `json:"dryRun,omitempty"`
	// ServerDryRun lists the writes the preflight sent with dryRun=All; a
	// refusal ends the preflight with an error.
	ServerDryRun []kube.DryRunWrite `json:"serverDryRun,omitempty"`
}

func (o *Options) planDocument(plan *expand.Plan) planDocument {
	doc := planDocument{APIVersion: apiVersion, Kind: "ExpandPVCPlan", Plan: plan, DryRun: o.DryRun}
	if o.ServerDryRun {
		doc.ServerDryRun = serverDryRunWrites(plan)
	}
	return doc
}

func (o *Options) printPlan(theme ui.Theme, plan *expand.Plan) error {
	if !o.Output.Human() {
		if !o.Output.JSON() {
			// A kubectl printer prints the plan or the result at the end
			// on standard output; a question about the plan shows it on
			// standard error.
			if o.Yes || o.DryRun {
				return nil
			}
			return o.writePlan(o.ErrOut, ui.NewTheme(false), plan)
		}
		b, err := json.Marshal(o.planDocument(plan))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	return o.writePlan(o.Out, theme, plan)
}

func (o *Options) writePlan(w io.Writer, theme ui.Theme, plan *expand.Plan) error {
	title := fmt.Sprintf("Plan: grow claim %s of statefulset %s (namespace %s) to %s, one ordinal at a time", plan.Claim, plan.StatefulSet, plan.Namespace, plan.Size)
	if plan.Resumed {
		title += " (continuing an interrupted run)"
	}
	fmt.Fprintln(w, theme.Bold(title))
	if len(plan.Ordinals) > 0 {
		if err := theme.RenderTable(w, planTable(plan)); err != nil {
			return err
		}
		if plan.Restart == expand.RestartAuto && len(plan.Restarts()) > 0 {
			fmt.Fprintf(w, "Restart \"if needed\": only when the file system resize does not finish on the running pod within %s.\n", o.OnlineResizeWait)
		}
	} else if !plan.Recreate {
		fmt.Fprintln(w, "No ordinals: the StatefulSet has 0 replicas.")
	}
	fmt.Fprintln(w, templateLine(plan))
	for _, warning := range plan.Warnings {
		fmt.Fprintln(w, theme.Warn("warning: "+warning))
	}
	return nil
}

func planTable(plan *expand.Plan) ui.Table {
	headers := []string{"STEP", "ORDINAL", "PVC", "STORAGECLASS", "REQUESTED", "CAPACITY", "NEW", "ACTION", "RESTART"}
	withRole := plan.Engine != ""
	if withRole {
		headers = append(headers, "ROLE")
	}
	t := ui.Table{Headers: headers}
	step := 0
	for _, op := range plan.Ordinals {
		stepCell := ui.Cell{Text: "-", Tone: ui.ToneFaint}
		action := ui.Plain(string(op.Action))
		switch op.Action {
		case expand.ActionDone:
			action = ui.Cell{Text: "done", Tone: ui.ToneGood}
		default:
			step++
			stepCell = ui.Plain(strconv.Itoa(step))
		}
		if op.Action == expand.ActionContinue {
			action = ui.Cell{Text: "continue", Tone: ui.ToneWarn}
		}
		restart := ui.Plain(op.Restart)
		if op.Restart == expand.RestartYes {
			restart.Tone = ui.ToneWarn
		}
		row := []ui.Cell{
			stepCell, ui.Plain(strconv.Itoa(op.Ordinal)), ui.Plain(op.PVC), ui.Plain(orDash(op.StorageClass)),
			ui.Plain(op.Requested), ui.Plain(op.Capacity), ui.Plain(plan.Size), action, restart,
		}
		if withRole {
			row = append(row, ui.Plain(orDash(string(op.Role))))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func templateLine(plan *expand.Plan) string {
	tp := plan.Template
	switch {
	case plan.Recreate:
		return fmt.Sprintf("Template: statefulset %s is missing; it is recreated from the saved copy (volumeClaimTemplate %s requests %s) and its pods are adopted.", plan.StatefulSet, plan.Claim, plan.Size)
	case tp.Verify:
		return "Template: " + tp.Reason + "."
	case tp.Update:
		line := fmt.Sprintf("Template: volumeClaimTemplate %s %s -> %s: statefulset %s is saved, deleted with orphan propagation (pods and claims stay) and recreated; its pods are adopted without a restart.",
			plan.Claim, tp.Current, plan.Size, plan.StatefulSet)
		if len(tp.ManagedBy) > 0 {
			line += fmt.Sprintf("\n          Managed by %s: update its manifest to %s too, or it will put the old template back.", strings.Join(tp.ManagedBy, " and "), plan.Size)
		}
		return line
	}
	return "Template: unchanged (" + tp.Reason + ")."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
