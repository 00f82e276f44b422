// Package util holds what every command shares: the options object handed
// to each command, exit codes, error explanations and signal handling.
package util

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
	"github.com/kubectl-sts/kubectl-sts/pkg/version"
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
	// FieldManager is --field-manager: the manager every write names.
	FieldManager string

	// Now and Getenv are injectable for tests.
	Now    func() time.Time
	Getenv func(string) string
	// StdinIsTerminal reports whether prompts can be answered; tests set it.
	StdinIsTerminal func() bool
	// TakeOver is --take-over: take an operation over from a process that
	// still holds its lease.
	TakeOver bool

	// ServerCheck, when set, runs once right after the client is built:
	// the root command sets it to warn about a server outside the tested
	// range (CheckServer).
	ServerCheck func(*kube.Client)

	newClient func() (*kube.Client, error)
	once      sync.Once
	client    *kube.Client
	clientErr error
}

// NewOptions returns options for a real run on the given streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	o := &Options{
		IOStreams:    streams,
		ConfigFlags:  genericclioptions.NewConfigFlags(true),
		Color:        ui.ColorAuto,
		FieldManager: kube.FieldManager,
		Now:          time.Now,
		Getenv:       os.Getenv,
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

// Client returns the shared client, building it on first use. Its requests
// carry the plugin's user agent and its writes the field manager.
func (o *Options) Client() (*kube.Client, error) {
	o.once.Do(func() {
		o.client, o.clientErr = o.newClient()
		if o.clientErr == nil && o.client == nil {
			o.clientErr = fmt.Errorf("no Kubernetes client configured")
		}
		if o.clientErr == nil {
			o.client, o.clientErr = o.client.Identified(kube.UserAgent(version.Get().Version), o.FieldManager)
		}
		if o.clientErr == nil {
			o.client = o.client.WithServerCache()
		}
		if o.clientErr == nil && o.ServerCheck != nil {
			o.ServerCheck(o.client)
		}
	})
	return o.client, o.clientErr
}

// serverCheckTimeout bounds the version lookup of CheckServer, so a slow
// discovery answer never holds a command up for long.
const serverCheckTimeout = 5 * time.Second

// AnnotationNoServerCheck on a command turns CheckServer off for it (the
// version command reports the range itself).
const AnnotationNoServerCheck = "kubectl-sts.io/no-server-check"

// CheckServer asks the API server for its version and, outside the tested
// range, prints a warning on the error stream. It never fails: a server it
// cannot ask is left to the command's own requests to report.
func (o *Options) CheckServer(ctx context.Context, c *kube.Client) {
	ctx, cancel := context.WithTimeout(ctx, serverCheckTimeout)
	defer cancel()
	s, err := c.Server(ctx)
	if err != nil {
		return
	}
	if w := s.RangeWarning(); w != "" {
		fmt.Fprintln(o.ErrOut, w)
	}
}

// AddFieldManagerFlag adds --field-manager to a command that writes.
func (o *Options) AddFieldManagerFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.FieldManager, "field-manager", o.FieldManager, "Name of the manager every write records in managedFields")
}

// ValidateFieldManager refuses a name the API server would reject, before
// anything is written.
func (o *Options) ValidateFieldManager() error {
	switch {
	case o.FieldManager == "":
		return UsageErrorf("--field-manager cannot be empty")
	case len(o.FieldManager) > 128:
		return UsageErrorf("--field-manager must be at most 128 characters, got %d", len(o.FieldManager))
	}
	for _, r := range o.FieldManager {
		if !unicode.IsPrint(r) {
			return UsageErrorf("--field-manager %q has a character that is not printable", o.FieldManager)
		}
	}
	return nil
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
//
// When a kubectl printer (yaml, name, jsonpath, go-template) prints the
// document the command ends with, progress goes to standard error as plain
// lines, so standard output holds the document alone.
func (o *Options) ProgressPrinter(output *OutputFlags) (*ui.ProgressPrinter, error) {
	theme, err := o.Theme()
	if err != nil {
		return nil, err
	}
	out, mode := o.Out, ui.ProgressPlain
	switch {
	case output.Printer():
		out, theme = o.ErrOut, ui.NewTheme(false)
	case output.JSON():
		mode = ui.ProgressJSON
	case o.OutIsTerminal():
		mode = ui.ProgressLive
	}
	p := ui.NewProgressPrinter(out, theme, mode, o.Now)
	p.Verbose = o.Verbosity > 0
	return p, nil
}

// AddTakeOverFlag binds --take-over, offered by every command that holds an
// operation's lease.
func AddTakeOverFlag(f *pflag.FlagSet, o *Options) {
	f.BoolVar(&o.TakeOver, "take-over", false, "Take the recorded operation over from a process that still holds its lease (it stops at its next renewal; this run starts when its lease has lapsed)")
}

// AddDryRunFlag adds kubectl's --dry-run=none|client|server (bare
// --dry-run means client) with this command's meaning of each.
func AddDryRunFlag(cmd *cobra.Command) {
	kcmdutil.AddDryRunFlag(cmd)
	cmd.Flags().Lookup("dry-run").Usage = `"none", "client" (print the plan, send nothing) or "server" (also send the first writes with dryRun=All, so validation, admission and quota judge them, and report their answers); --dry-run alone means client`
}

// DryRunStrategy parses --dry-run with kubectl's rules into "change
// nothing" and "ask the server".
func DryRunStrategy(cmd *cobra.Command) (dryRun, server bool, err error) {
	s, err := kcmdutil.GetDryRunStrategy(cmd)
	if err != nil {
		return false, false, UsageErrorf("%v", err)
	}
	return s != kcmdutil.DryRunNone, s == kcmdutil.DryRunServer, nil
}

// ChangeFlags is the flag group of every command that changes the cluster:
// kubectl's --dry-run, --yes to skip the confirmation, and --field-manager.
type ChangeFlags struct {
	// DryRun changes nothing; ServerDryRun also sends the first writes
	// with dryRun=All.
	DryRun, ServerDryRun bool
	// Yes is --yes: do not ask for confirmation.
	Yes bool
}

// AddFlags binds the group to cmd.
func (f *ChangeFlags) AddFlags(o *Options, cmd *cobra.Command) {
	AddDryRunFlag(cmd)
	cmd.Flags().BoolVarP(&f.Yes, "yes", "y", false, "Do not ask for confirmation")
	o.AddFieldManagerFlag(cmd)
}

// Complete parses --dry-run with kubectl's rules.
func (f *ChangeFlags) Complete(cmd *cobra.Command) error {
	var err error
	f.DryRun, f.ServerDryRun, err = DryRunStrategy(cmd)
	return err
}
