package ui

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// StatusOptions select what RenderStatus and RenderStatusList show.
type StatusOptions struct {
	// Wide adds hashes, IPs, UIDs, images, storage classes and volumes.
	Wide bool
	// AllNamespaces adds the NAMESPACE column to lists.
	AllNamespaces bool
	// EngineStaleAfter marks engine data older than this (relative to
	// the report) with its age; zero marks nothing.
	EngineStaleAfter time.Duration
	// EnginesNotRead says, under a list, that no engine was asked, so the
	// states are Kubernetes' alone.
	EnginesNotRead bool
}

// RenderStatus writes one report: a summary of the StatefulSet, a table
// with one row per ordinal (and per claim), leftover claims, and the
// verdict with its reasons and hints.
func (t Theme) RenderStatus(w io.Writer, r *status.Report, opts StatusOptions) error {
	ew := &errWriter{w: w}
	t.summary(ew, r, opts)
	ew.println()
	if err := t.RenderTable(ew, t.ordinalTable(r, opts)); err != nil {
		return err
	}
	t.memberErrors(ew, r)
	for _, o := range r.Ordinals {
		if !o.Desired {
			ew.println(t.Faint(fmt.Sprintf("* ordinal outside the desired %d replicas: the pod is being removed", r.StatefulSet.Replicas.Desired)))
			break
		}
	}
	if len(r.LeftoverPVCs) > 0 {
		ew.println()
		ew.println(t.Bold("Leftover PVCs:"))
		if err := t.RenderTable(ew, t.leftoverTable(r, opts)); err != nil {
			return err
		}
	}
	ew.println()
	t.verdict(ew, r.Verdict)
	return ew.err
}

func (t Theme) summary(w *errWriter, r *status.Report, opts StatusOptions) {
	s := r.StatefulSet
	rows := [][2]string{
		{"StatefulSet:", s.Namespace + "/" + s.Name},
		{"Replicas:", fmt.Sprintf("%d desired | %d ready | %d current | %d updated | %d available",
			s.Replicas.Desired, s.Replicas.Ready, s.Replicas.Current, s.Replicas.Updated, s.Replicas.Available)},
		{"Revisions:", t.revisions(s)},
		{"Update strategy:", updateStrategy(s)},
		{"Pod management:", fmt.Sprintf("%s, ordinals %s", s.PodManagementPolicy, ordinals(s))},
		{"PVC retention:", fmt.Sprintf("whenDeleted %s, whenScaled %s", s.PVCRetention.WhenDeleted, s.PVCRetention.WhenScaled)},
	}
	if opts.Wide {
		rows = append(rows,
			[2]string{"UID:", string(s.UID)},
			[2]string{"Selector:", s.Selector},
			[2]string{"Service:", orDash(s.ServiceName)},
			[2]string{"Generation:", fmt.Sprintf("%d (observed %d)", s.Generation, s.ObservedGeneration)},
			[2]string{"Images:", images(s.Containers)},
			[2]string{"Claim templates:", claimTemplates(s.VolumeClaimTemplates)},
			[2]string{"Age:", age(r.ObservedAt, s.CreatedAt)},
		)
	}
	if e := r.Engine; e != nil {
		line := t.engine(e)
		if age := r.ObservedAt.Sub(e.ReadAt); opts.EngineStaleAfter > 0 && !e.ReadAt.IsZero() && age > opts.EngineStaleAfter {
			line += " " + t.Warn(fmt.Sprintf("(engine data from %s ago, at %s)", duration.HumanDuration(age), e.ReadAt.Format(time.TimeOnly)))
		}
		rows = append(rows, [2]string{"Engine:", line})
	}
	width := 0
	for _, row := range rows {
		width = max(width, len(row[0]))
	}
	for _, row := range rows {
		w.println(t.Bold(row[0]) + strings.Repeat(" ", width-len(row[0])+1) + row[1])
	}
}

func (t Theme) revisions(s status.StatefulSetInfo) string {
	cur := status.ShortRevision(s.Name, s.CurrentRevision)
	upd := status.ShortRevision(s.Name, s.UpdateRevision)
	if s.CurrentRevisionSource == status.RevisionFromPods {
		cur += " (from the pods: this server's status.currentRevision is stale for OnDelete)"
	}
	if s.CurrentRevision == s.UpdateRevision {
		return fmt.Sprintf("current %s, update %s", orDash(cur), orDash(upd))
	}
	return fmt.Sprintf("current %s, update %s", orDash(cur), t.Warn(orDash(upd)))
}

func updateStrategy(s status.StatefulSetInfo) string {
	if s.UpdateStrategy != "RollingUpdate" {
		return s.UpdateStrategy
	}
	out := fmt.Sprintf("RollingUpdate, partition %d", s.Partition)
	if s.MaxUnavailable != "" {
		out += ", maxUnavailable " + s.MaxUnavailable
	}
	return out
}

func ordinals(s status.StatefulSetInfo) string {
	if s.Replicas.Desired <= 0 {
		return fmt.Sprintf("from %d (none desired)", s.OrdinalsStart)
	}
	return fmt.Sprintf("%d..%d", s.OrdinalsStart, s.OrdinalsStart+s.Replicas.Desired-1)
}

// engine is the summary's engine line; the error or reason itself is in
// the verdict, so a long message is printed once.
func (t Theme) engine(e *status.EngineStatus) string {
	switch {
	case e.Error != "":
		return e.Name + ", " + t.Bad("unavailable") + " (see the verdict)"
	case !e.Healthy:
		return e.Name + ", " + t.Warn("unhealthy") + " (see the verdict)"
	}
	return e.Name + ", " + t.Good("healthy")
}

func hasMembers(r *status.Report) bool {
	for _, o := range r.Ordinals {
		if o.Member != nil {
			return true
		}
	}
	return false
}

// ordinalTable is one row per ordinal (and per further claim). The default
// columns fit DefaultWidth (120) characters: the pod name carries the
// ordinal, CLAIM names the claim's template and SIZE merges capacity and
// request; long node, claim and pod names are shortened in the middle.
// Wide adds ORDINAL, HASH, IP, IMAGES, the claim's full name, its storage
// class and volume, and REQUESTED and CAPACITY apart, at any width.
func (t Theme) ordinalTable(r *status.Report, opts StatusOptions) Table {
	members := hasMembers(r)
	var h []string
	if opts.Wide {
		h = append(h, "ORDINAL")
	}
	h = append(h, "POD", "STATUS", "READY", "REVISION")
	if opts.Wide {
		h = append(h, "HASH")
	}
	h = append(h, "RESTARTS", "NODE")
	if opts.Wide {
		h = append(h, "IP")
	}
	h = append(h, "AGE")
	if members {
		h = append(h, "ROLE", "LAG", "SLOTS")
	}
	if opts.Wide {
		h = append(h, "IMAGES", "PVC", "STORAGECLASS", "VOLUME", "REQUESTED", "CAPACITY", "RESIZE")
	} else {
		h = append(h, "CLAIM", "SIZE", "RESIZE")
	}

	tb := Table{Headers: h}
	if !opts.Wide {
		col := func(name string) int {
			for i, x := range h {
				if x == name {
					return i
				}
			}
			return -1
		}
		tb.MaxWidth = DefaultWidth
		tb.Shrink = []Shrink{{col("NODE"), 6}, {col("POD"), 10}, {col("CLAIM"), 6}, {col("STATUS"), 10}}
	}
	s := r.StatefulSet
	for _, o := range r.Ordinals {
		podCells := t.podCells(r, o, opts, members)
		claims := o.PVCs
		if len(claims) == 0 {
			claims = []status.PVCStatus{{}}
		}
		for i, c := range claims {
			row := podCells
			if i > 0 {
				// Further claims of the same ordinal: pod columns blank.
				row = make([]Cell, len(podCells))
				for k := range row {
					row[k] = Plain("")
				}
			}
			row = append(append([]Cell(nil), row...), t.claimCells(c, opts, s.Name)...)
			tb.Rows = append(tb.Rows, row)
		}
	}
	return tb
}

func (t Theme) podCells(r *status.Report, o status.OrdinalStatus, opts StatusOptions, members bool) []Cell {
	ord := strconv.Itoa(o.Ordinal)
	name := o.PodName
	if !o.Desired {
		ord += "*"
		if !opts.Wide {
			name += "*"
		}
	}
	p := o.Pod
	var cells []Cell
	if opts.Wide {
		cells = append(cells, Plain(ord))
	}
	cells = append(cells, Plain(name))
	if p == nil {
		cells = append(cells, Cell{Text: "Missing", Tone: ToneBad}, Plain("-"), Plain("-"))
		if opts.Wide {
			cells = append(cells, Plain("-"))
		}
		cells = append(cells, Plain("-"), Plain("-"))
		if opts.Wide {
			cells = append(cells, Plain("-"))
		}
		cells = append(cells, Plain("-"))
	} else {
		statusTone := ToneGood
		switch {
		case p.Terminating:
			statusTone = ToneWarn
		case p.Status != "Running":
			statusTone = ToneBad
		case !p.Ready:
			statusTone = ToneWarn
		}
		readyTone := ToneGood
		if !p.Ready {
			readyTone = ToneBad
		}
		rev := p.RevisionRole
		revTone := ToneNone
		switch p.RevisionRole {
		case status.RevisionOther:
			rev = orDash(status.ShortRevision(r.StatefulSet.Name, p.Revision))
			revTone = ToneBad
		case status.RevisionUpdate:
			revTone = ToneWarn
		}
		restartTone := ToneNone
		if p.Restarts > 0 {
			restartTone = ToneWarn
		}
		cells = append(cells,
			Cell{Text: p.Status, Tone: statusTone},
			Cell{Text: fmt.Sprintf("%d/%d", p.ReadyContainers, p.Containers), Tone: readyTone},
			Cell{Text: rev, Tone: revTone})
		if opts.Wide {
			cells = append(cells, Plain(orDash(status.ShortRevision(r.StatefulSet.Name, p.Revision))))
		}
		cells = append(cells, Cell{Text: strconv.Itoa(int(p.Restarts)), Tone: restartTone}, Plain(orDash(p.Node)))
		if opts.Wide {
			cells = append(cells, Plain(orDash(p.PodIP)))
		}
		cells = append(cells, Plain(age(r.ObservedAt, p.CreatedAt)))
	}
	if members {
		cells = append(cells, t.memberCells(o.Member, opts)...)
	}
	if opts.Wide {
		imgs := "-"
		if p != nil {
			imgs = images(p.Images)
		}
		cells = append(cells, Plain(imgs))
	}
	return cells
}

func (t Theme) memberCells(m *plugins.Member, opts StatusOptions) []Cell {
	if m == nil {
		return []Cell{Plain("-"), Plain("-"), Plain("-")}
	}
	roleTone := ToneNone
	switch {
	case m.Error != "" || m.Role == plugins.RoleUnknown:
		roleTone = ToneBad
	case m.Role == plugins.RolePrimary:
		roleTone = ToneGood
	}
	role := string(m.Role)
	if role == "" {
		role = string(plugins.RoleUnknown)
	}
	return []Cell{{Text: role, Tone: roleTone}, Plain(lag(m, opts.Wide)), Plain(slots(m.Slots, opts.Wide))}
}

// lag renders how far behind a member is: wide shows bytes and seconds
// ("2KiB/0.5s"), the default table the seconds when the engine knows them,
// else the bytes.
func lag(m *plugins.Member, wide bool) string {
	if !wide && m.LagSeconds != nil {
		return strconv.FormatFloat(*m.LagSeconds, 'f', -1, 64) + "s"
	}
	var parts []string
	if m.LagBytes != nil {
		parts = append(parts, plugins.Bytes(*m.LagBytes))
	}
	if m.LagSeconds != nil {
		parts = append(parts, strconv.FormatFloat(*m.LagSeconds, 'f', -1, 64)+"s")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "/")
}

func slots(ss []plugins.Slot, wide bool) string {
	if len(ss) == 0 {
		return "-"
	}
	if !wide {
		// active/total, as READY counts containers.
		active := 0
		for _, s := range ss {
			if s.Active {
				active++
			}
		}
		return fmt.Sprintf("%d/%d", active, len(ss))
	}
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
		if !s.Active {
			names[i] += "(inactive)"
		}
	}
	return strings.Join(names, ",")
}

func (t Theme) claimCells(c status.PVCStatus, opts StatusOptions, stsName string) []Cell {
	if c.Name == "" {
		n := 3
		if opts.Wide {
			n = 6
		}
		cells := make([]Cell, n)
		for i := range cells {
			cells[i] = Plain("-")
		}
		return cells
	}
	if !opts.Wide {
		claim := c.Template
		if claim == "" {
			claim = c.Name
		}
		if c.Missing {
			return []Cell{Plain(claim), {Text: "(missing)", Tone: ToneWarn}, Plain("-")}
		}
		return []Cell{Plain(claim), t.sizeCell(c), t.resizeCell(c, opts)}
	}
	if c.Missing {
		return []Cell{Plain(c.Name), Plain("-"), Plain("-"), {Text: "(missing)", Tone: ToneWarn}, Plain("-"), Plain("-")}
	}
	capTone := ToneNone
	if c.Capacity != c.Requested {
		capTone = ToneWarn
	}
	return []Cell{Plain(c.Name), Plain(orDash(c.StorageClass)), Plain(orDash(c.VolumeName)),
		Plain(requested(c)), {Text: orDash(c.Capacity), Tone: capTone}, t.resizeCell(c, opts)}
}

func requested(c status.PVCStatus) string {
	req := orDash(c.Requested)
	if c.Phase != "" && c.Phase != "Bound" {
		req += "(" + c.Phase + ")"
	}
	return req
}

// sizeCell is the capacity, then "->" and the request while they differ
// (a resize under way or pending), e.g. "1Gi->2Gi".
func (t Theme) sizeCell(c status.PVCStatus) Cell {
	if c.Capacity == "" || c.Capacity == c.Requested {
		return Plain(requested(c))
	}
	return Cell{Text: c.Capacity + "->" + requested(c), Tone: ToneWarn}
}

func (t Theme) resizeCell(c status.PVCStatus, opts StatusOptions) Cell {
	text := orDash(c.Resize)
	if opts.Wide && c.ResizeDetail != "" {
		text += " (" + c.ResizeDetail + ")"
	}
	switch c.Resize {
	case status.ResizeFailed:
		return Cell{Text: text, Tone: ToneBad}
	case status.ResizeNone:
		return Cell{Text: text, Tone: ToneFaint}
	}
	return Cell{Text: text, Tone: ToneWarn}
}

// memberErrors prints why members could not be read, unless a verdict
// reason already says it.
func (t Theme) memberErrors(w *errWriter, r *status.Report) {
	said := func(msg string) bool {
		for _, reason := range r.Verdict.Reasons {
			if strings.Contains(reason.Message, msg) {
				return true
			}
		}
		return false
	}
	for _, o := range r.Ordinals {
		if o.Member != nil && o.Member.Error != "" && !said(o.Member.Error) {
			w.println(t.Faint(fmt.Sprintf("  %s: %s", o.PodName, o.Member.Error)))
		}
	}
}

func (t Theme) leftoverTable(r *status.Report, opts StatusOptions) Table {
	h := []string{"ORDINAL", "PVC", "STATUS"}
	if opts.Wide {
		h = append(h, "STORAGECLASS", "VOLUME")
	}
	h = append(h, "REQUESTED", "CAPACITY", "AGE")
	tb := Table{Headers: h}
	for _, c := range r.LeftoverPVCs {
		row := []Cell{Plain(strconv.Itoa(c.Ordinal)), Plain(c.Name), Plain(orDash(c.Phase))}
		if opts.Wide {
			row = append(row, Plain(orDash(c.StorageClass)), Plain(orDash(c.VolumeName)))
		}
		created := time.Time{}
		if c.CreatedAt != nil {
			created = *c.CreatedAt
		}
		row = append(row, Plain(orDash(c.Requested)), Plain(orDash(c.Capacity)), Plain(age(r.ObservedAt, created)))
		tb.Rows = append(tb.Rows, row)
	}
	return tb
}

func (t Theme) verdict(w *errWriter, v status.Verdict) {
	w.println(t.Bold("Verdict:") + " " + t.Tone(stateTone(v.State), string(v.State)))
	for _, r := range v.Reasons {
		w.println(fmt.Sprintf("- %s %s: %s", t.Tone(severityTone(r.Severity), string(r.Severity)), t.Bold(string(r.Code)), r.Message))
		if r.Hint != "" {
			w.println("  " + t.Faint("hint:") + " " + r.Hint)
		}
	}
}

func stateTone(s status.State) Tone {
	switch s {
	case status.StateHealthy:
		return ToneGood
	case status.StateDegraded:
		return ToneBad
	}
	return ToneWarn
}

func severityTone(s status.Severity) Tone {
	switch s {
	case status.SeverityError:
		return ToneBad
	case status.SeverityWarning, status.SeverityProgressing:
		return ToneWarn
	}
	return ToneFaint
}

// RenderStatusList writes one line per StatefulSet with its one-line verdict.
func (t Theme) RenderStatusList(w io.Writer, reports []*status.Report, opts StatusOptions) error {
	var h []string
	if opts.AllNamespaces {
		h = append(h, "NAMESPACE")
	}
	h = append(h, "NAME", "READY", "UPDATED", "CURRENT", "UPDATE", "PARTITION", "AGE", "STATE", "REASONS")
	if opts.Wide {
		h = append(h, "STRATEGY", "POLICY", "MESSAGE")
	}
	tb := Table{Headers: h}
	for _, r := range reports {
		s := r.StatefulSet
		var row []Cell
		if opts.AllNamespaces {
			row = append(row, Plain(s.Namespace))
		}
		readyTone := ToneGood
		if s.Replicas.Ready < s.Replicas.Desired {
			readyTone = ToneBad
		}
		partition := "-"
		if s.UpdateStrategy == "RollingUpdate" {
			partition = strconv.Itoa(int(s.Partition))
		}
		codes := make([]string, 0, len(r.Verdict.Reasons))
		for _, c := range r.Verdict.Codes() {
			codes = append(codes, string(c))
		}
		row = append(row,
			Plain(s.Name),
			Cell{Text: fmt.Sprintf("%d/%d", s.Replicas.Ready, s.Replicas.Desired), Tone: readyTone},
			Plain(strconv.Itoa(int(s.Replicas.Updated))),
			Plain(orDash(status.ShortRevision(s.Name, s.CurrentRevision))),
			Plain(orDash(status.ShortRevision(s.Name, s.UpdateRevision))),
			Plain(partition),
			Plain(age(r.ObservedAt, s.CreatedAt)),
			Cell{Text: string(r.Verdict.State), Tone: stateTone(r.Verdict.State)},
			Plain(orDash(strings.Join(codes, ","))),
		)
		if opts.Wide {
			msg := "-"
			if len(r.Verdict.Reasons) > 0 {
				msg = r.Verdict.Reasons[0].Message
			}
			row = append(row, Plain(s.UpdateStrategy), Plain(s.PodManagementPolicy), Plain(msg))
		}
		tb.Rows = append(tb.Rows, row)
	}
	if err := t.RenderTable(w, tb); err != nil {
		return err
	}
	if opts.EnginesNotRead {
		_, err := fmt.Fprintln(w, t.Faint("Database engines were not asked (--engine none): the states above are from Kubernetes alone."))
		return err
	}
	return nil
}

func images(cs []status.Container) string {
	if len(cs) == 0 {
		return "-"
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Image
	}
	return strings.Join(out, ",")
}

func claimTemplates(ts []status.ClaimTemplate) string {
	if len(ts) == 0 {
		return "-"
	}
	out := make([]string, len(ts))
	for i, c := range ts {
		out[i] = fmt.Sprintf("%s %s %s", c.Name, orDash(c.Requested), orDash(c.StorageClass))
	}
	return strings.Join(out, "; ")
}

// age renders now-t the way kubectl's AGE column does.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) println(s ...string) {
	_, _ = io.WriteString(e, strings.Join(s, "")+"\n")
}
