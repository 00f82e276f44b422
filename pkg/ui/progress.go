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
type ProgressPrinter struct {
	out   io.Writer
	theme Theme
	mode  string
	now   func() time.Time

	mu      sync.Mutex
	start   time.Time
	last    progress.Event
	footer  bool
	stopped chan struct{}
	done    chan struct{}
}

// NewProgressPrinter returns a printer writing to out in mode.
func NewProgressPrinter(out io.Writer, theme Theme, mode string, now func() time.Time) *ProgressPrinter {
	if now == nil {
		now = time.Now
	}
	return &ProgressPrinter{out: out, theme: theme, mode: mode, now: now, start: now()}
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

// Stop ends the live footer and leaves the terminal on a clean line.
func (p *ProgressPrinter) Stop() {
	if p.stopped != nil {
		close(p.stopped)
		<-p.done
		p.stopped = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearFooter()
}

// Emit implements progress.Sink.
func (p *ProgressPrinter) Emit(e progress.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case ProgressJSON:
		b, err := json.Marshal(e)
		if err == nil {
			fmt.Fprintf(p.out, "%s\n", b)
		}
		return
	case ProgressLive:
		p.clearFooter()
		fmt.Fprintln(p.out, p.line(e))
		p.last = e
		p.drawFooter()
	default:
		fmt.Fprintln(p.out, p.line(e))
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

func (p *ProgressPrinter) drawFooter() {
	if p.mode != ProgressLive {
		return
	}
	elapsed := p.now().Sub(p.start).Round(time.Second)
	text := fmt.Sprintf("%s elapsed", elapsed)
	if p.last.Step > 0 {
		text = fmt.Sprintf("step %d/%d · %s", p.last.Step, p.last.Steps, text)
	}
	fmt.Fprint(p.out, "\r\x1b[K"+p.theme.Faint(text))
	p.footer = true
}

func (p *ProgressPrinter) clearFooter() {
	if p.footer {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.footer = false
	}
}
