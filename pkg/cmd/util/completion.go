package util

import (
	"sort"
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

// CompleteSelector completes -l/--selector with the key=value labels of
// the StatefulSets in scope (one LIST, as for names).
func (o *Options) CompleteSelector(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := o.Client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	ns := c.Namespace
	if all, _ := cmd.Flags().GetBool("all-namespaces"); all {
		ns = metav1.NamespaceAll
	}
	list, err := c.Kube.AppsV1().StatefulSets(ns).List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range list.Items {
		for k, v := range s.Labels {
			pair := k + "=" + v
			if !seen[pair] && strings.HasPrefix(pair, toComplete) {
				seen[pair] = true
				out = append(out, pair)
			}
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// WireCompletion gives every command that takes a StatefulSet NAME dynamic
// completion of it, every --claim flag completion of claim templates, and
// every -l/--selector completion of the labels in use.
func (o *Options) WireCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && strings.Contains(c.Use, "NAME") {
			c.ValidArgsFunction = o.CompleteStatefulSetNames
		}
		if c.Flags().Lookup("claim") != nil {
			_ = c.RegisterFlagCompletionFunc("claim", o.CompleteClaimNames)
		}
		if c.Flags().Lookup("selector") != nil {
			_ = c.RegisterFlagCompletionFunc("selector", o.CompleteSelector)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
