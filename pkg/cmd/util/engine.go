package util

import (
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// EngineFlags is the flag group of every command that asks a database
// engine: --engine, --engine-timeout and (where the command has no
// container flag of its own) --container. One implementation, one help
// text; each command's help says what it asks the engine for.
type EngineFlags struct {
	// Engine is --engine: auto, none, or an engine name.
	Engine string
	// Timeout is --engine-timeout: the bound of each database query;
	// zero is the engine's default.
	Timeout time.Duration
	// Container is --container: the container engine commands run in;
	// empty is the engine's default.
	Container string
}

// NewEngineFlags returns the group with --engine auto.
func NewEngineFlags() *EngineFlags { return &EngineFlags{Engine: plugins.EngineAuto} }

// Parts of the group a command binds besides --engine: only those its
// workflow honours.
const (
	EngineTimeoutFlag = 1 << iota
	EngineContainerFlag
)

// AddFlags binds --engine, and --engine-timeout and --container as parts
// says. known are the engine names --engine accepts.
func (f *EngineFlags) AddFlags(cmd *cobra.Command, known []string, parts int) {
	fl := cmd.Flags()
	fl.StringVar(&f.Engine, "engine", f.Engine, "Database engine of the StatefulSet: auto (its kubectl-sts.io/engine annotation, then its images), none, or one of "+strings.Join(known, ", "))
	if parts&EngineTimeoutFlag != 0 {
		fl.DurationVar(&f.Timeout, "engine-timeout", f.Timeout, "Bound of each database query (0: the engine's default)")
	}
	if parts&EngineContainerFlag != 0 {
		fl.StringVarP(&f.Container, "container", "c", f.Container, "Container to run database commands in (default: the engine's)")
	}
}

// Validate refuses an unknown engine, a negative timeout and a container
// name that cannot be one, before anything is read.
func (f *EngineFlags) Validate(engines *plugins.Registry) error {
	if engines == nil {
		engines = plugins.NewRegistry()
	}
	if _, err := engines.Detect(nil, f.Engine); err != nil {
		return UsageErrorf("%v", err)
	}
	if f.Timeout < 0 {
		return UsageErrorf("--engine-timeout must not be negative, got %s", f.Timeout)
	}
	if f.Container != "" {
		if errs := validation.IsDNS1123Label(f.Container); len(errs) > 0 {
			return UsageErrorf("--container %q is not a container name: %s", f.Container, strings.Join(errs, "; "))
		}
	}
	return nil
}
