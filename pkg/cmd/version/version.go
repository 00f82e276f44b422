// Package version is the `kubectl sts version` command.
package version

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/version"
)

// serverTimeout bounds the server version lookup so `version` answers
// quickly even when the cluster is unreachable.
const serverTimeout = 5 * time.Second

// Options holds the flags of `kubectl sts version`.
type Options struct {
	*cmdutil.Options
	Output     string
	ClientOnly bool
}

// Result is what `version -o json|yaml` prints.
type Result struct {
	Client      version.Info `json:"clientVersion"`
	Server      string       `json:"serverVersion,omitempty"`
	ServerError string       `json:"serverError,omitempty"`
	// TestedRange is the range of Kubernetes minors the plugin is tested
	// on; ServerTested says whether the server lies inside it (absent when
	// the server was not asked or its version is not a version).
	TestedRange  string `json:"testedRange"`
	ServerTested *bool  `json:"serverTested,omitempty"`
}

// NewCmdVersion returns the version command.
func NewCmdVersion(parent *cmdutil.Options) *cobra.Command {
	o := &Options{Options: parent}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin version and, when reachable, the cluster's",
		Example: `  kubectl sts version
  kubectl sts version --client -o json`,
		Args: cmdutil.NoArgs,
		// Run reports the tested range itself.
		Annotations: map[string]string{cmdutil.AnnotationNoServerCheck: "true"},
		RunE:        cmdutil.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	cmd.Flags().BoolVar(&o.ClientOnly, "client", false, "Print only the plugin version; do not contact the cluster")
	return cmd
}

// Complete has nothing to take: the command has no arguments.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the flags.
func (o *Options) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return cmdutil.UsageErrorf("invalid output format %q: use json or yaml", o.Output)
}

// Run prints the versions.
func (o *Options) Run(context.Context) error {
	res := Result{Client: version.Get(), TestedRange: kube.TestedRange()}
	if !o.ClientOnly {
		res.Server, res.ServerError = o.serverVersion()
		if s := kube.ParseServer(res.Server); res.Server != "" && s.Known {
			tested := s.Tested()
			res.ServerTested = &tested
		}
	}
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(res)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	fmt.Fprintf(o.Out, "Client Version: %s\n", res.Client.Version)
	if res.Client.Commit != "" {
		fmt.Fprintf(o.Out, "Commit: %s\n", res.Client.Commit)
	}
	fmt.Fprintf(o.Out, "Go Version: %s (%s)\n", res.Client.GoVersion, res.Client.Platform)
	switch {
	case res.Server != "" && res.ServerTested != nil && *res.ServerTested:
		fmt.Fprintf(o.Out, "Server Version: %s (inside the tested range %s)\n", res.Server, res.TestedRange)
	case res.Server != "" && res.ServerTested != nil:
		fmt.Fprintf(o.Out, "Server Version: %s (outside the tested range %s: it should work, but see docs/compatibility.md)\n", res.Server, res.TestedRange)
	case res.Server != "":
		fmt.Fprintf(o.Out, "Server Version: %s (not a version the tested range %s can judge)\n", res.Server, res.TestedRange)
	case res.ServerError != "":
		fmt.Fprintf(o.Out, "Server Version: unavailable (%s)\n", res.ServerError)
	}
	return nil
}

func (o *Options) serverVersion() (string, string) {
	c, err := o.Client()
	if err != nil {
		return "", err.Error()
	}
	disc := c.Kube.Discovery()
	if c.Config != nil {
		cfg := rest.CopyConfig(c.Config)
		cfg.Timeout = serverTimeout
		d, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return "", err.Error()
		}
		disc = d
	}
	v, err := disc.ServerVersion()
	if err != nil {
		return "", err.Error()
	}
	return v.GitVersion, ""
}
