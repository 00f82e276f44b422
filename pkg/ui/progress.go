package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
)

// Progress output modes.
const (
	// ProgressLive redraws a footer with the current step and elapsed time
	// under the event lines; for terminals.
	ProgressLive = "live"
	// ProgressPlain prints one greppable line per event.
	ProgressPlain = "plain"
	// ProgressJSON prints one JSON object per event (JSON lines).
	ProgressJSON = "json"
)

// ProgressPrinter renders workflow events. It is a progress.Sink.
//
// On a terminal and in plain lines it prints one line per meaningful
// change: an identical line is never printed twice, and a wait that has
// not changed is not repeated (on a terminal waits show in the footer
// only). Verbose (-v) and JSON lines keep every event. The live footer
// shows the step, its pods done of total, the step's and the whole run's
// elapsed time and what is awaited; Stop prints a summary with the pods and
// elapsed time of every step.
type ProgressPrinter struct {
	out   io.Writer
	theme Theme
	mode  string
	now   func() time.Time
	// Verbose prints every event, as JSON lines do.
	Verbose bool

	mu      sync.Mutex
	start   time.Time
	last    progress.Event
	printed map[string]bool
	waiting string
	steps   []*stepTally
	// finished: the workflow reported success after its steps.
	finished bool
	footer   bool
	stopped  chan struct{}
	done     chan struct{}
}

// stepTally is what the footer and the summary know of one step.
type stepTally struct {
	n, total    int
	pods        map[string]bool
	first, last time.Time
	startedNow  time.Time
	passed      bool
}

// NewProgressPrinter returns a printer writing to out in mode.
func NewProgressPrinter(out io.Writer, theme Theme, mode string, now func() time.Time) *ProgressPrinter {
	if now == nil {
		now = time.Now
	}
	return &ProgressPrinter{out: out, theme: theme, mode: mode, now: now, start: now(), printed: map[string]bool{}}
}

// Start begins redrawing the live footer once a second; other modes need
// no ticker. Call Stop when the workflow ends.
func (p *ProgressPrinter) Start() {
	if p.mode != ProgressLive {
		return
	}
	p.stopped, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stopped:
				return
			case <-t.C:
				p.mu.Lock()
				p.drawFooter()
				p.mu.Unlock()
			}
		}
	}()
}

// Stop ends the live footer, leaves the terminal on a clean line and, on
// human output of a run with steps, prints the summary of the steps.
func (p *ProgressPrinter) Stop() {
	if p.stopped != nil {
		close(p.stopped)
		<-p.done
		p.stopped = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearFooter()
	if p.mode != ProgressJSON && len(p.steps) > 0 {
		fmt.Fprintln(p.out, p.summary())
	}
}

// Emit implements progress.Sink.
func (p *ProgressPrinter) Emit(e progress.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == ProgressJSON {
		b, err := json.Marshal(e)
		if err == nil {
			fmt.Fprintf(p.out, "%s\n", b)
		}
		return
	}
	p.tally(e)
	if e.Step == 0 && e.Level == progress.Success && len(p.steps) > 0 {
		p.finished = true
	}
	if e.Step > 0 {
		p.last = e
	}
	wait := e.Kind == "gate" && e.Level == progress.Info
	if wait {
		p.waiting = strings.TrimSpace(e.Object + " " + e.Message)
	} else {
		p.waiting = ""
	}
	if !p.Verbose {
		key := string(e.Level) + "\x00" + e.Kind + "\x00" + e.Object + "\x00" + e.Message
		if p.printed[key] || (wait && p.mode == ProgressLive) {
			p.drawFooter()
			return
		}
		p.printed[key] = true
	}
	p.clearFooter()
	fmt.Fprintln(p.out, p.line(e))
	p.drawFooter()
}

// tally follows steps and their pods for the footer and the summary.
func (p *ProgressPrinter) tally(e progress.Event) {
	if e.Step <= 0 {
		return
	}
	for len(p.steps) < e.Step {
		p.steps = append(p.steps, &stepTally{n: len(p.steps) + 1, pods: map[string]bool{}})
	}
	st := p.steps[e.Step-1]
	if st.first.IsZero() || e.Kind == "step-started" {
		st.first, st.startedNow = e.Time, p.now()
	}
	if !st.passed {
		st.last = e.Time
	}
	if e.Total > 0 {
		st.total = e.Total
	}
	switch {
	case e.Kind == "step-passed":
		st.passed = true
	case e.Level == progress.Success && strings.HasPrefix(e.Object, "pod/"):
		// A pod counts for the step that moved it, not again when a
		// later step checks it.
		for _, earlier := range p.steps[:e.Step-1] {
			if earlier.pods[e.Object] {
				return
			}
		}
		st.pods[e.Object] = true
	}
}

// line formats one event: time, step, object, message, with a marker for
// anything that is not routine.
func (p *ProgressPrinter) line(e progress.Event) string {
	var b strings.Builder
	b.WriteString(p.theme.Faint(e.Time.Format("15:04:05")))
	if e.Step > 0 {
		fmt.Fprintf(&b, " step %d/%d", e.Step, e.Steps)
	}
	if e.Object != "" {
		b.WriteString(" " + p.theme.Bold(e.Object))
	}
	b.WriteString(" " + p.marked(e))
	return b.String()
}

func (p *ProgressPrinter) marked(e progress.Event) string {
	switch e.Level {
	case progress.Success:
		return p.theme.Good(e.Message)
	case progress.Warning:
		return p.theme.Warn("warning: " + e.Message)
	case progress.Failure:
		return p.theme.Bad("FAILED: " + e.Message)
	}
	return e.Message
}

// pods is "pods 1/2" of a step whose pod count is known.
func (st *stepTally) podsText() string {
	if st.total <= 0 {
		return ""
	}
	done := min(len(st.pods), st.total)
	if st.passed {
		done = st.total
	}
	return fmt.Sprintf("pods %d/%d", done, st.total)
}

func (p *ProgressPrinter) drawFooter() {
	if p.mode != ProgressLive {
		return
	}
	now := p.now()
	parts := []string{}
	if p.last.Step > 0 && p.last.Step <= len(p.steps) {
		st := p.steps[p.last.Step-1]
		parts = append(parts, fmt.Sprintf("step %d/%d", p.last.Step, p.last.Steps))
		if t := st.podsText(); t != "" {
			parts = append(parts, t)
		}
		parts = append(parts, fmt.Sprintf("this step %s", now.Sub(st.startedNow).Round(time.Second)))
	}
	parts = append(parts, fmt.Sprintf("%s elapsed", now.Sub(p.start).Round(time.Second)))
	if p.waiting != "" {
		parts = append(parts, "waiting: "+p.waiting)
	}
	fmt.Fprint(p.out, "\r\x1b[K"+p.theme.Faint(strings.Join(parts, " · ")))
	p.footer = true
}

func (p *ProgressPrinter) clearFooter() {
	if p.footer {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.footer = false
	}
}

// summary is one line per step: its pods (when the workflow says how many
// it moves) and how long it took, by the events' own clock: from its first
// event to the next step's, or to its own last.
func (p *ProgressPrinter) summary() string {
	var b strings.Builder
	b.WriteString(p.theme.Bold("Steps:"))
	var first, last time.Time
	for i, st := range p.steps {
		if st.first.IsZero() {
			continue
		}
		if first.IsZero() {
			first = st.first
		}
		end := st.last
		var next *stepTally
		if i+1 < len(p.steps) && !p.steps[i+1].first.IsZero() {
			next = p.steps[i+1]
			if !st.passed {
				end = next.first
			}
		}
		last = end
		fmt.Fprintf(&b, "\n  step %d", st.n)
		if t := st.podsText(); t != "" {
			b.WriteString("  " + t)
		}
		fmt.Fprintf(&b, "  %s", end.Sub(st.first).Round(time.Second))
		switch {
		case st.passed:
			b.WriteString("  passed")
		case next == nil && !p.finished:
			b.WriteString("  not finished")
		}
	}
	fmt.Fprintf(&b, "\n  in all %s", last.Sub(first).Round(time.Second))
	return b.String()
}
