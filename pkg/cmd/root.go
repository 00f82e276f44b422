// Package cmd assembles the kubectl-sts command tree.
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/cleanuppvcs"
	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/expandpvc"
	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/scaledown"
	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/status"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/version"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/ui"
)

// NewCmdRoot returns the root command wired to o.
func NewCmdRoot(o *cmdutil.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl-sts",
		Short: "Day-2 operations for StatefulSets: staged rollouts, safe scale-down, PVC expansion, status",
		Long: `kubectl sts runs the day-2 workflows of StatefulSets that are usually shell loops:
a staged partition rollout with health gates and automatic rollback, a scale-down that
cleans up replication slots and PVCs, a sequential PVC expansion, and a status view that
combines the Kubernetes state with the database's own view.`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl sts",
		},
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := ui.ColorEnabled(o.Color, o.Out, o.Getenv); err != nil {
				return cmdutil.UsageErrorf("%v", err)
			}
			if err := validateRequestTimeout(o.ConfigFlags); err != nil {
				return err
			}
			if cmd.Flags().Lookup("field-manager") != nil {
				if err := o.ValidateFieldManager(); err != nil {
					return err
				}
			}
			if err := setKlogVerbosity(o.Verbosity); err != nil {
				return err
			}
			if cmd.Annotations[cmdutil.AnnotationNoServerCheck] == "" {
				// Once, when the command first needs the cluster: a
				// warning (never a failure) on a server outside the
				// tested range.
				ctx := cmd.Context()
				o.ServerCheck = func(c *kube.Client) { o.CheckServer(ctx, c) }
			}
			if o.Verbosity > 0 {
				// The watch layer silences client-go unless the context
				// carries a logger; with -v the informers' lists and
				// watches are logged like every other request.
				cmd.SetContext(klog.NewContext(cmd.Context(), klog.Background()))
			}
			return nil
		},
	}
	cmd.SetIn(o.In)
	cmd.SetOut(o.Out)
	cmd.SetErr(o.ErrOut)

	flags := cmd.PersistentFlags()
	o.ConfigFlags.AddFlags(flags)
	flags.StringVar(&o.Color, "color", o.Color, "Colorize output: auto, always or never (NO_COLOR is honoured in auto)")
	flags.IntVarP(&o.Verbosity, "v", "v", 0, "Log level of the Kubernetes client (e.g. 6 shows API requests)")

	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cmdutil.UsageError{Err: err}
	})

	cmd.AddCommand(
		status.NewCmdStatus(o),
		rollout.NewCmdRollout(o),
		scaledown.NewCmdScaleDown(o),
		cleanuppvcs.NewCmdCleanup(o),
		expandpvc.NewCmdExpandPVC(o),
		version.NewCmdVersion(o),
	)
	o.WireCompletion(cmd)
	return cmd
}

// validateRequestTimeout refuses a --request-timeout that client-go would
// only refuse when the client is built, as a configuration error, and a
// negative one, which it would take for no timeout at all.
func validateRequestTimeout(f *genericclioptions.ConfigFlags) error {
	if f == nil || f.Timeout == nil || *f.Timeout == "" {
		return nil
	}
	d, err := clientcmd.ParseTimeout(*f.Timeout)
	switch {
	case err != nil:
		return cmdutil.UsageErrorf("invalid --request-timeout %q: use a whole number of seconds or a duration with its unit (e.g. 30s, 2m); 0 means no timeout", *f.Timeout)
	case d < 0:
		return cmdutil.UsageErrorf("invalid --request-timeout %q: it cannot be negative; 0 means no timeout", *f.Timeout)
	}
	return nil
}

func setKlogVerbosity(v int) error {
	if v <= 0 {
		return nil
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	return fs.Set("v", strconv.Itoa(v))
}

// Execute runs the command line and returns the process exit code. It owns
// the one signal-aware context every command runs under.
func Execute(args []string, streams genericiooptions.IOStreams) int {
	ctx, stop := cmdutil.SignalContext(context.Background(), streams.ErrOut, os.Exit)
	defer stop()
	return Run(ctx, cmdutil.NewOptions(cmdutil.WithKillHook(streams, os.Getenv)), args)
}

// Run executes args against o under ctx and reports errors on o.ErrOut; it
// is what in-process tests call.
func Run(ctx context.Context, o *cmdutil.Options, args []string) int {
	root := NewCmdRoot(o)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return HandleError(o, cmd, err)
}

// HandleError prints err the way every command should and maps it to the
// exit code.
func HandleError(o *cmdutil.Options, cmd *cobra.Command, err error) int {
	if err == nil {
		return cmdutil.ExitOK
	}
	var exitErr *cmdutil.ExitError
	code := cmdutil.ExitFailed
	if errors.As(err, &exitErr) {
		code = exitErr.Code
		if exitErr.Err == nil {
			return code
		}
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own refusal of a subcommand it does not know is bad input.
		err = &cmdutil.UsageError{Err: err}
	}
	if cmdutil.IsUsage(err) {
		fmt.Fprintf(o.ErrOut, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(o.ErrOut, "See '%s --help' for usage.\n", cmd.CommandPath())
		}
		return cmdutil.ExitUsage
	}
	if errors.Is(err, context.Canceled) {
		msg := strings.TrimSuffix(err.Error(), ": "+context.Canceled.Error())
		if !strings.HasPrefix(msg, "interrupted") {
			msg = "interrupted: " + msg
		}
		fmt.Fprintf(o.ErrOut, "error: %s\n", msg)
		return cmdutil.ExitInterrupted
	}
	if c, cerr := o.Client(); cerr == nil && apierrors.IsNotFound(err) {
		ctx, cancel := context.WithTimeout(context.Background(), elsewhereTimeout)
		err = cmdutil.Elsewhere(ctx, c.Kube, c.Namespace, err)
		cancel()
	}
	fmt.Fprintf(o.ErrOut, "error: %v\n", cmdutil.Explain(err, o.Namespace()))
	return code
}

// elsewhereTimeout bounds the look-up of where a StatefulSet that was not
// found exists.
const elsewhereTimeout = 5 * time.Second
