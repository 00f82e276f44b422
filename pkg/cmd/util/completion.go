package util

import (
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CompleteStatefulSetNames completes the NAME argument from the cluster,
// in the namespace the command line selects.
func (o *Options) CompleteStatefulSetNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := o.Client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	list, err := c.Kube.AppsV1().StatefulSets(c.Namespace).List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, s := range list.Items {
		if strings.HasPrefix(s.Name, toComplete) {
			out = append(out, s.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// CompleteClaimNames completes --claim with the volumeClaimTemplates of the
// StatefulSet named on the command line.
func (o *Options) CompleteClaimNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := o.Client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	sts, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(cmd.Context(), args[0], metav1.GetOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if strings.HasPrefix(t.Name, toComplete) {
			out = append(out, t.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// WireCompletion gives every command that takes a StatefulSet NAME dynamic
// completion of it, and every --claim flag completion of claim templates.
func (o *Options) WireCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && strings.Contains(c.Use, "NAME") {
			c.ValidArgsFunction = o.CompleteStatefulSetNames
		}
		if c.Flags().Lookup("claim") != nil {
			_ = c.RegisterFlagCompletionFunc("claim", o.CompleteClaimNames)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
