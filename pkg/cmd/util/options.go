// Package util holds what every command shares: the options object handed
// to each command, exit codes, error explanations and signal handling.
package util

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
)

// Options is the one object every command receives: streams, connection
// flags and the lazily built shared client. Tests build a fake twin with
// pkg/cmd/testing.NewFakeOptions.
type Options struct {
	genericiooptions.IOStreams

	ConfigFlags *genericclioptions.ConfigFlags
	// Color is the --color mode: auto, always or never.
	Color string
	// Verbosity is -v, the client-go log level.
	Verbosity int

	// Now and Getenv are injectable for tests.
	Now    func() time.Time
	Getenv func(string) string
	// StdinIsTerminal reports whether prompts can be answered; tests set it.
	StdinIsTerminal func() bool
	// TakeOver is --take-over: take an operation over from a process that
	// still holds its lease.
	TakeOver bool

	newClient func() (*kube.Client, error)
	once      sync.Once
	client    *kube.Client
	clientErr error
}

// NewOptions returns options for a real run on the given streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	o := &Options{
		IOStreams:   streams,
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		Color:       ui.ColorAuto,
		Now:         time.Now,
		Getenv:      os.Getenv,
	}
	o.StdinIsTerminal = func() bool { return ui.IsTerminal(o.In) }
	o.newClient = func() (*kube.Client, error) { return kube.NewClient(o.ConfigFlags, o.ErrOut) }
	return o
}

// NewOptionsWithClient returns options whose client is fixed; the fake
// twin and in-process tests against a real cluster use it.
func NewOptionsWithClient(streams genericiooptions.IOStreams, c *kube.Client) *Options {
	o := NewOptions(streams)
	o.newClient = func() (*kube.Client, error) { return c, nil }
	return o
}

// Client returns the shared client, building it on first use.
func (o *Options) Client() (*kube.Client, error) {
	o.once.Do(func() {
		o.client, o.clientErr = o.newClient()
		if o.clientErr == nil && o.client == nil {
			o.clientErr = fmt.Errorf("no Kubernetes client configured")
		}
	})
	return o.client, o.clientErr
}

// Namespace returns the namespace commands work in, for hints; empty when
// the client cannot be built.
func (o *Options) Namespace() string {
	c, err := o.Client()
	if err != nil {
		return ""
	}
	return c.Namespace
}

// Theme returns the styling for the output stream, honouring --color and
// NO_COLOR.
func (o *Options) Theme() (ui.Theme, error) {
	on, err := ui.ColorEnabled(o.Color, o.Out, o.Getenv)
	if err != nil {
		return ui.Theme{}, err
	}
	return ui.NewTheme(on), nil
}

// OutIsTerminal reports whether the output stream is a terminal, which
// selects live progress over plain lines.
func (o *Options) OutIsTerminal() bool { return ui.IsTerminal(o.Out) }

// ProgressPrinter returns the renderer for a workflow's events: JSON lines
// for -o json, a live footer on a terminal, plain lines otherwise. The
// caller Starts and Stops it around the workflow.
func (o *Options) ProgressPrinter(output string) (*ui.ProgressPrinter, error) {
	theme, err := o.Theme()
	if err != nil {
		return nil, err
	}
	mode := ui.ProgressPlain
	switch {
	case output == "json":
		mode = ui.ProgressJSON
	case o.OutIsTerminal():
		mode = ui.ProgressLive
	}
	return ui.NewProgressPrinter(o.Out, theme, mode, o.Now), nil
}

// AddTakeOverFlag binds --take-over, offered by every command that holds an
// operation's lease.
func AddTakeOverFlag(f *pflag.FlagSet, o *Options) {
	f.BoolVar(&o.TakeOver, "take-over", false, "Take the recorded operation over from a process that still holds its lease (it stops at its next renewal; this run starts when its lease has lapsed)")
}
