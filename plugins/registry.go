package plugins

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
)

// Values of --engine (and of the engine annotation) that name no engine.
const (
	// EngineAuto detects the engine from the annotation, then the images.
	EngineAuto = "auto"
	// EngineNone turns the engine off: Kubernetes state only.
	EngineNone = "none"
)

// Aliased is implemented by engines known by more than one name
// (e.g. "postgresql" for "postgres").
type Aliased interface {
	Aliases() []string
}

// Registry holds the engines a command can use. It is built explicitly
// (see plugins/all), never from package state.
type Registry struct {
	engines []Engine
}

// NewRegistry returns a registry of engines; detection tries them in order.
func NewRegistry(engines ...Engine) *Registry {
	return &Registry{engines: append([]Engine(nil), engines...)}
}

// Names returns the engines' names in registry order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.engines))
	for _, e := range r.engines {
		names = append(names, e.Name())
	}
	return names
}

// Lookup finds an engine by name or alias, case-insensitively.
func (r *Registry) Lookup(name string) (Engine, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	for _, e := range r.engines {
		if e.Name() == name {
			return e, true
		}
		if a, ok := e.(Aliased); ok {
			for _, alias := range a.Aliases() {
				if alias == name {
					return e, true
				}
			}
		}
	}
	return nil, false
}

// UnknownEngineError reports an engine name that is not in the registry.
type UnknownEngineError struct {
	Name string
	// Source says where the name came from: "--engine" or the annotation.
	Source string
	Known  []string
}

func (e *UnknownEngineError) Error() string {
	choices := append([]string{EngineAuto, EngineNone}, e.Known...)
	return fmt.Sprintf("unknown engine %q in %s: use one of %s", e.Name, e.Source, strings.Join(choices, ", "))
}

// Detect picks the engine of sts. explicit is the --engine value: "none"
// means no engine; a name picks that engine; "" or "auto" looks at the
// kubectl-sts.io/engine annotation, then at the containers' images. A nil
// engine with a nil error means no engine applies.
func (r *Registry) Detect(sts *appsv1.StatefulSet, explicit string) (Engine, error) {
	if e, decided, err := r.byName(explicit, "--engine"); decided {
		return e, err
	}
	if sts == nil {
		return nil, nil
	}
	if v, ok := sts.Annotations[AnnotationEngine]; ok {
		source := fmt.Sprintf("annotation %s of statefulset %s", AnnotationEngine, sts.Name)
		if e, decided, err := r.byName(v, source); decided {
			return e, err
		}
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, e := range r.engines {
			if e.Matches(c.Image) {
				return e, nil
			}
		}
	}
	return nil, nil
}

// byName resolves an explicit value; decided is false for "" and "auto".
func (r *Registry) byName(v, source string) (e Engine, decided bool, err error) {
	v = strings.ToLower(strings.TrimSpace(v))
	switch v {
	case "", EngineAuto:
		return nil, false, nil
	case EngineNone:
		return nil, true, nil
	}
	if e, ok := r.Lookup(v); ok {
		return e, true, nil
	}
	return nil, true, &UnknownEngineError{Name: v, Source: source, Known: r.Names()}
}
