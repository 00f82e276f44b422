// Package progress is the typed event stream the workflows report through.
// Workflows never print: they send Events to a Sink, and the command layer
// renders them (live on a terminal, plain lines, or JSON lines).
package progress

import (
	"sync"
	"time"
)

// Level is how much attention an event needs.
type Level string

// Levels, from routine to alarming.
const (
	Info    Level = "info"
	Success Level = "success"
	Warning Level = "warning"
	Failure Level = "failure"
)

// Event is one thing a workflow did or saw.
type Event struct {
	Time time.Time `json:"time"`
	// Operation is the workflow: "rollout", "scale-down", "expand-pvc".
	Operation string `json:"operation"`
	// Step and Steps place the event in the plan (1-based); zero when the
	// event belongs to no step (preflight, summary).
	Step  int `json:"step,omitempty"`
	Steps int `json:"steps,omitempty"`
	// Total is, on a step-started event, how many pods the step moves, so
	// a renderer can count them done.
	Total int `json:"total,omitempty"`
	// Kind is a stable machine-readable name, e.g. "step-started",
	// "pod-ready", "gate-failed", "rollback-started", "pvc-resized".
	Kind  string `json:"kind"`
	Level Level  `json:"level"`
	// Object names what the event is about, e.g. "pod/db-2".
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Emit implements Sink.
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard is a Sink that drops every event.
type Discard struct{}

// Emit implements Sink.
func (Discard) Emit(Event) {}

// Recorder keeps every event; tests use it to assert what a workflow did.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Emit implements Sink.
func (r *Recorder) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns the events so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Kinds returns the Kind of every event so far, in order.
func (r *Recorder) Kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, e := range r.events {
		out[i] = e.Kind
	}
	return out
}

// Reporter stamps events of one operation and forwards them to a Sink.
type Reporter struct {
	Sink      Sink
	Operation string
	Now       func() time.Time
}

// Emit sends an event, filling Time and Operation.
func (r Reporter) Emit(e Event) {
	if r.Sink == nil {
		return
	}
	if e.Time.IsZero() {
		now := time.Now
		if r.Now != nil {
			now = r.Now
		}
		e.Time = now()
	}
	if e.Operation == "" {
		e.Operation = r.Operation
	}
	if e.Level == "" {
		e.Level = Info
	}
	r.Sink.Emit(e)
}
