package status

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// watch follows the StatefulSet, its pods and its claims through the
// shared tracker (a fixed number of watches) and redraws on change, at
// most once per WatchMinInterval, and every WatchRefresh so ages and the
// stuck threshold move on. Ctrl-C (a cancelled context) ends it with exit
// code 0. The tracker applies the same ownership rules as a single read
// (wait.OwnsPod, wait.OwnsClaim), so both show the same claims.
func (o *Options) watch(ctx context.Context) error {
	c := o.client
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := wait.NewTracker(c.Kube, c.Namespace, o.Name, wait.WithPVCs())
	if err := tr.Start(watchCtx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return o.explainNotFound(ctx, err)
	}

	tty := o.OutIsTerminal() && o.Output.Human()
	refresh := time.NewTicker(o.WatchRefresh)
	defer refresh.Stop()
	members := &memberCache{interval: o.WatchEngineInterval}
	var lastKey string
	frames := 0
	for {
		snap, changed := tr.Latest()
		if snap.StatefulSet == nil {
			return fmt.Errorf("statefulset %s/%s was deleted", c.Namespace, o.Name)
		}
		r := status.SummarizeSnapshot(snap, o.Now(), o.statusOptions())
		if err := members.fill(watchCtx, o, r, snap); err != nil {
			return err
		}
		// Off a terminal, print a frame only when something changed (not
		// merely an age), so logs stay readable.
		key := fmt.Sprint(snap.Seq, r.Verdict.State, r.Verdict.Codes(), members.seq)
		if tty || key != lastKey {
			if err := o.drawFrame(r, tty, frames); err != nil {
				return err
			}
			frames++
			lastKey = key
		}

		// Coalesce bursts of events into one redraw.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.WatchMinInterval):
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-refresh.C:
		case <-tr.Done():
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch of statefulset %s/%s stopped", c.Namespace, o.Name)
		}
	}
}

func (o *Options) drawFrame(r *status.Report, tty bool, n int) error {
	var buf bytes.Buffer
	switch {
	case o.Output.Is("yaml"):
		if n > 0 {
			buf.WriteString("---\n")
		}
	case !o.Output.Human():
	case tty:
		buf.WriteString(clearScreen)
		fmt.Fprintf(&buf, "%s\n\n", o.theme.Faint(fmt.Sprintf("Watching statefulset %s/%s at %s (Ctrl-C to stop)",
			r.StatefulSet.Namespace, r.StatefulSet.Name, r.ObservedAt.Format(time.TimeOnly))))
	default:
		if n > 0 {
			buf.WriteString("\n")
		}
		fmt.Fprintf(&buf, "--- %s ---\n", r.ObservedAt.Format(time.RFC3339))
	}
	if err := o.print(&buf, r); err != nil {
		return err
	}
	if b := buf.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
		// jsonpath and templates print no newline; frames are lines.
		buf.WriteString("\n")
	}
	_, err := o.Out.Write(buf.Bytes())
	return err
}

// memberCache asks the engine at most once per interval, and again when
// the set of pods changed, and reuses the answer in between.
type memberCache struct {
	interval time.Duration
	asked    time.Time
	pods     []string
	engine   plugins.Engine
	resolved bool
	status   status.EngineStatus
	members  []plugins.Member
	// seq counts answers, so a new answer redraws.
	seq int
}

func (m *memberCache) fill(ctx context.Context, o *Options, r *status.Report, snap wait.Snapshot) error {
	if o.EngineFor == nil {
		return nil
	}
	if !m.resolved {
		e, err := o.EngineFor(snap.StatefulSet)
		if err != nil {
			return err
		}
		m.engine, m.resolved = e, true
	}
	if m.engine == nil {
		return nil
	}
	pods := make([]string, 0, len(snap.Pods))
	for _, p := range snap.OrderedPods() {
		pods = append(pods, string(p.UID))
	}
	now := time.Now()
	if m.seq > 0 && now.Sub(m.asked) < m.interval && slices.Equal(pods, m.pods) {
		status.SetMembers(r, m.status, m.members, o.statusOptions())
		return nil
	}
	status.AddMembers(ctx, r, m.engine, o.buildOptions().Target(snap.StatefulSet, snap.OrderedPods()), o.statusOptions())
	m.status, m.members = *r.Engine, r.Members
	m.asked, m.pods = now, pods
	m.seq++
	return nil
}
