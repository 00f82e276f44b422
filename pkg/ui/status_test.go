package ui_test

import (
	"bytes"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func report(f *statustest.Fixture) *status.Report {
	return status.Summarize(f.StatefulSet, f.Pods, f.PVCs, f.Now, status.Options{})
}

func render(t *testing.T, theme ui.Theme, r *status.Report, opts ui.StatusOptions) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, theme.RenderStatus(&buf, r, opts))
	return buf.String()
}

func TestRenderStatusGolden(t *testing.T) {
	withMembers := func() *status.Report {
		r := report(statustest.New("prod", "pg", 3, now).NotReady(2, time.Minute))
		status.SetMembers(r, status.EngineStatus{Name: "postgres", Healthy: false, Reason: "replica pg-2 is not streaming"}, []plugins.Member{
			{Pod: "pg-0", Ordinal: 0, Role: plugins.RolePrimary, State: "primary", Slots: []plugins.Slot{{Name: "pg_1", Active: true}, {Name: "pg_2", Active: false}}},
			{Pod: "pg-1", Ordinal: 1, Role: plugins.RoleReplica, State: "streaming", LagBytes: ptr.To(int64(0)), LagSeconds: ptr.To(0.5)},
			{Pod: "pg-2", Ordinal: 2, Role: plugins.RoleUnknown, Error: "could not connect to server"},
		}, status.Options{})
		return r
	}
	// Names as clusters give them: long pod, node and claim names, and a
	// pod in a crash loop. The default table still fits 120 columns.
	longNames := func() *status.Report {
		f := statustest.New("production", "postgres-primary", 3, now).CrashLoop(2, 14)
		for i, p := range f.Pods {
			p.Spec.NodeName = fmt.Sprintf("ip-10-0-12-%d.eu-west-1.compute.internal", 30+i)
		}
		r := report(f)
		status.SetMembers(r, status.EngineStatus{Name: "postgres", Healthy: false, Reason: "replica postgres-primary-2 is not streaming"}, []plugins.Member{
			{Pod: "postgres-primary-0", Ordinal: 0, Role: plugins.RolePrimary, State: "primary", Slots: []plugins.Slot{{Name: "pg_1", Active: true}, {Name: "pg_2", Active: false}}},
			{Pod: "postgres-primary-1", Ordinal: 1, Role: plugins.RoleReplica, State: "streaming", LagBytes: ptr.To(int64(13107200)), LagSeconds: ptr.To(3.25)},
			{Pod: "postgres-primary-2", Ordinal: 2, Role: plugins.RoleUnknown, Error: "could not connect to server"},
		}, status.Options{})
		return r
	}
	twoClaims := func() *status.Report {
		f := statustest.New("prod", "db", 2, now)
		f.StatefulSet.Spec.VolumeClaimTemplates = append(f.StatefulSet.Spec.VolumeClaimTemplates, *f.StatefulSet.Spec.VolumeClaimTemplates[0].DeepCopy())
		f.StatefulSet.Spec.VolumeClaimTemplates[1].Name = "wal"
		for _, c := range f.PVCs {
			w := c.DeepCopy()
			w.Name = strings.Replace(c.Name, "data-", "wal-", 1)
			f.PVCs = append(f.PVCs, w)
		}
		return report(f.Resize(1, "2Gi", "pending-restart"))
	}
	cases := map[string]struct {
		report *status.Report
		opts   ui.StatusOptions
	}{
		"healthy":          {report: report(statustest.New("prod", "db", 3, now))},
		"healthy-wide":     {report: report(statustest.New("prod", "db", 3, now)), opts: ui.StatusOptions{Wide: true}},
		"rollout-paused":   {report: report(statustest.New("prod", "db", 3, now).StartRollout(2, 2))},
		"rollout-stuck":    {report: report(statustest.New("prod", "db", 3, now).StartRollout(0).Recreate(2, statustest.UpdateHash, 7*time.Minute, false))},
		"leftover-pvcs":    {report: report(statustest.New("prod", "db", 5, now).ScaleTo(3).DeletePod(3).DeletePod(4))},
		"missing-and-down": {report: report(statustest.New("prod", "db", 3, now).ScaleTo(2).DeletePod(1).Terminating(2, 5*time.Second))},
		"resize":           {report: report(statustest.New("prod", "db", 3, now).Resize(0, "2Gi", "failed").Resize(1, "2Gi", "pending-restart"))},
		"resize-wide":      {report: report(statustest.New("prod", "db", 3, now).Resize(0, "2Gi", "failed").Resize(1, "2Gi", "in-progress")), opts: ui.StatusOptions{Wide: true}},
		"members":          {report: withMembers()},
		"members-wide":     {report: withMembers(), opts: ui.StatusOptions{Wide: true}},
		"two-claims":       {report: twoClaims()},
		"long-names":       {report: longNames()},
		"long-names-wide":  {report: longNames(), opts: ui.StatusOptions{Wide: true}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := render(t, ui.NewTheme(false), tc.report, tc.opts)
			assert.NotContains(t, got, "\x1b[", "no escape codes without colour")
			for i, l := range strings.Split(got, "\n") {
				assert.Equal(t, strings.TrimRight(l, " "), l, "line %d has trailing blanks", i+1)
			}
			if !tc.opts.Wide {
				table := false
				for _, l := range strings.Split(got, "\n") {
					table = strings.HasPrefix(l, "POD ") || strings.HasPrefix(l, "ORDINAL ") || (table && l != "")
					if table {
						assert.LessOrEqual(t, utf8.RuneCountInString(l), ui.DefaultWidth, "table line wider than 120 columns: %q", l)
					}
				}
			}
			statustest.Golden(t, "status-"+name, got, *update)
		})
	}
}

// columns splits a plain table line the way awk would.
func columns(line string) []string { return strings.Fields(line) }

func TestPlainTableColumnsLineUp(t *testing.T) {
	got := render(t, ui.NewTheme(false), report(statustest.New("prod", "db", 12, now).NotReady(11, time.Minute)), ui.StatusOptions{})
	lines := strings.Split(got, "\n")
	var header string
	var rows []string
	for i, l := range lines {
		if strings.HasPrefix(l, "POD") {
			header = l
			rows = lines[i+1 : i+13]
			break
		}
	}
	require.NotEmpty(t, header)
	for _, col := range []string{"STATUS", "READY", "AGE", "CLAIM", "SIZE"} {
		at := strings.Index(header, col)
		require.GreaterOrEqual(t, at, 0, col)
		for _, r := range rows {
			assert.NotEqual(t, ' ', rune(r[at]), "column %s starts at %d in %q", col, at, r)
			assert.Equal(t, ' ', rune(r[at-1]), "column %s is preceded by a blank in %q", col, r)
		}
	}
	// db-11 greps to exactly its row, with every column in place.
	var row11 []string
	for _, r := range rows {
		if strings.HasPrefix(r, "db-11 ") {
			row11 = columns(r)
		}
	}
	assert.Equal(t, []string{"db-11", "Running", "0/1", "current", "0", "node-2", "3h", "data", "1Gi", "-"}, row11)
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func TestColourTableUsesStylesAndKeepsTheCells(t *testing.T) {
	r := report(statustest.New("prod", "db", 3, now).StartRollout(0).Recreate(2, statustest.UpdateHash, 7*time.Minute, false))
	got := render(t, ui.NewTheme(true), r, ui.StatusOptions{})
	assert.Contains(t, got, "\x1b[", "colour output is styled")
	plain := ansi.ReplaceAllString(got, "")
	for _, s := range []string{"db-2", "Running", "0/1", "update", "RolloutStuck", "kubectl delete pod db-2 -n prod", "data"} {
		assert.Contains(t, plain, s)
	}
	// The lipgloss table draws a rule under the header.
	assert.Contains(t, plain, "───")
}

func TestRenderStatusListGolden(t *testing.T) {
	reports := []*status.Report{
		report(statustest.New("dev", "cache", 1, now)),
		report(statustest.New("prod", "db", 3, now).StartRollout(0).Recreate(2, statustest.UpdateHash, 7*time.Minute, false).AddLeftoverPVC(4)),
		report(statustest.New("prod", "pg", 3, now).StartRollout(2, 2)),
	}
	ondelete := statustest.New("prod", "kv", 2, now)
	ondelete.StatefulSet.Spec.UpdateStrategy.Type = "OnDelete"
	ondelete.StatefulSet.Spec.UpdateStrategy.RollingUpdate = nil
	reports = append(reports, report(ondelete))
	var buf bytes.Buffer
	require.NoError(t, ui.NewTheme(false).RenderStatusList(&buf, reports[1:], ui.StatusOptions{}))
	statustest.Golden(t, "list", buf.String(), *update)
	buf.Reset()
	require.NoError(t, ui.NewTheme(false).RenderStatusList(&buf, reports, ui.StatusOptions{AllNamespaces: true, Wide: true}))
	statustest.Golden(t, "list-all-wide", buf.String(), *update)
	assert.Contains(t, buf.String(), "RolloutStuck,LeftoverPVCs")
}

func TestPendingClaimShowsItsPhase(t *testing.T) {
	f := statustest.New("prod", "db", 1, now)
	f.PVC(0).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	got := render(t, ui.NewTheme(false), report(f), ui.StatusOptions{})
	assert.Contains(t, got, "1Gi(Pending)")
	assert.Contains(t, got, "PVCPending")
}
