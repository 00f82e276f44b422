package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

func TestHelpSaysKubectlSts(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := f.Run(context.Background(), Run, "--help")
	require.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, f.Out.String(), "kubectl sts [command]")
	for _, sub := range []string{"status", "rollout", "scale-down", "expand-pvc", "cleanup", "version"} {
		assert.Contains(t, f.Out.String(), "\n  "+sub+" ", "help lists %s", sub)
	}
	for _, flag := range []string{"--kubeconfig", "--context", "--namespace", "--as", "--color", "-v, --v"} {
		assert.Contains(t, f.Out.String(), flag)
	}
}

func TestVersionJSONIncludesServer(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := f.Run(context.Background(), Run, "version", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &got))
	client := got["clientVersion"].(map[string]any)
	assert.NotEmpty(t, client["version"])
	assert.NotEmpty(t, client["goVersion"])
	assert.Contains(t, got, "serverVersion")
}

func TestBadInputIsUsageError(t *testing.T) {
	cases := map[string][]string{
		"invalid color":        {"--color", "purple", "version", "--client"},
		"unknown flag":         {"version", "--bogus"},
		"invalid output":       {"version", "-o", "xml"},
		"version takes no arg": {"version", "extra"},
		"unknown subcommand":   {"frobnicate", "db"},
		"empty field manager":  {"scale-down", "db", "--replicas", "1", "--field-manager", ""},
		"long field manager":   {"expand-pvc", "db", "--size", "2Gi", "--field-manager", strings.Repeat("m", 129)},
		"bad request timeout":  {"status", "db", "--request-timeout", "abc"},
		"negative timeout":     {"scale-down", "db", "--replicas", "1", "--request-timeout", "-5s"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			f := cmdtesting.NewFakeOptions()
			code := f.Run(context.Background(), Run, args...)
			assert.Equal(t, cmdutil.ExitUsage, code)
			assert.Contains(t, f.ErrOut.String(), "error: ")
			assert.Contains(t, f.ErrOut.String(), "--help' for usage")
			assert.Empty(t, f.Out.String())
		})
	}
}

func TestCancelledContextExitsInterrupted(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := HandleError(f.Options, nil, fmt.Errorf("waiting for pod db-2: %w", context.Canceled))
	assert.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Contains(t, f.ErrOut.String(), "interrupted")

	// A message that says it was interrupted is not prefixed again, and
	// the cancellation's own words are not repeated after it.
	f = cmdtesting.NewFakeOptions()
	code = HandleError(f.Options, nil, fmt.Errorf("interrupted during step 2 of 4; the record is kept: run kubectl sts rollout resume db to continue: %w", context.Canceled))
	assert.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Equal(t, "error: interrupted during step 2 of 4; the record is kept: run kubectl sts rollout resume db to continue\n", f.ErrOut.String())
}

func TestCompletionOfNamesClaimsAndSubcommands(t *testing.T) {
	sts := func(name, ns string, claims ...string) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}}}
		for _, c := range claims {
			s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: c}})
		}
		return s
	}
	objs := []runtime.Object{sts("db", "default", "data", "wal"), sts("dbx", "default"), sts("cache", "default"), sts("other", "elsewhere")}

	complete := func(args ...string) []string {
		f := cmdtesting.NewFakeOptions(objs...)
		code := f.Run(context.Background(), Run, append([]string{"__complete"}, args...)...)
		require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
		var words []string
		for _, line := range strings.Split(strings.TrimSpace(f.Out.String()), "\n") {
			if !strings.HasPrefix(line, ":") {
				words = append(words, strings.SplitN(line, "\t", 2)[0])
			}
		}
		return words
	}

	assert.Subset(t, complete(""), []string{"status", "rollout", "scale-down", "expand-pvc", "cleanup", "version"})
	assert.ElementsMatch(t, []string{"db", "dbx"}, complete("status", "d"))
	assert.ElementsMatch(t, []string{"cache", "db", "dbx"}, complete("scale-down", ""))
	assert.Empty(t, complete("status", "db", ""), "only one NAME")
	assert.ElementsMatch(t, []string{"data", "wal"}, complete("expand-pvc", "db", "--claim", ""))
	assert.ElementsMatch(t, []string{"wal"}, complete("expand-pvc", "db", "--claim", "w"))
	assert.Equal(t, []string{"app=cache", "app=db", "app=dbx"}, complete("status", "-l", ""))
	assert.Equal(t, []string{"app=db", "app=dbx"}, complete("status", "--selector", "app=d"))
	assert.Equal(t, []string{"app=other"}, complete("status", "-A", "-l", "app=o"))
	assert.Subset(t, complete("status", "db", "-o", ""), []string{"table", "wide", "json", "yaml", "name", "jsonpath", "go-template"})
	assert.Equal(t, "text", complete("rollout", "status", "db", "-o", "")[0], "the command's own format first")
}

// pflag turns the first `quoted` word of a usage string into the flag's
// value name, so `--pause-after kubectl sts rollout resume` would render.
// Every flag of every command is checked, including the global ones.
func TestNoFlagUsageRendersABacktickWordAsItsValueName(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	root := NewCmdRoot(f.Options)
	var checked int
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.InheritedFlags()} {
			fs.VisitAll(func(fl *pflag.Flag) {
				checked++
				name, _ := pflag.UnquoteUsage(fl)
				assert.NotContains(t, name, " ", "%s --%s: value name %q comes from a backtick in its usage", c.CommandPath(), fl.Name, name)
				assert.NotContains(t, fl.Usage, "`", "%s --%s: a backtick in the usage becomes the value name", c.CommandPath(), fl.Name)
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	assert.Greater(t, checked, 50, "every command's flags were visited")
}

// Every command that writes names its field manager, as kubectl's do.
func TestEveryWritingCommandTakesFieldManager(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	root := NewCmdRoot(f.Options)
	for _, path := range [][]string{{"rollout"}, {"rollout", "resume"}, {"rollout", "undo"}, {"rollout", "abort"}, {"scale-down"}, {"cleanup"}, {"cleanup-pvcs"}, {"expand-pvc"}} {
		c, _, err := root.Find(path)
		require.NoError(t, err)
		fl := c.Flags().Lookup("field-manager")
		if assert.NotNil(t, fl, "%v", path) {
			assert.Equal(t, "kubectl-sts", fl.DefValue, "%v", path)
		}
	}
}

// The flags every command repeats come from the shared groups of
// pkg/cmd/util: one implementation and one help text each, and -o on every
// command with kubectl's printers.
func TestSharedFlagGroupsHaveOneHelpText(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	root := NewCmdRoot(f.Options)
	groups := map[string][]string{
		"engine":         {"status", "rollout", "scale-down", "expand-pvc"},
		"engine-timeout": {"status", "expand-pvc"},
		"yes":            {"rollout", "rollout resume", "rollout undo", "scale-down", "cleanup-pvcs", "expand-pvc"},
		"dry-run":        {"rollout", "rollout resume", "rollout undo", "scale-down", "cleanup-pvcs", "expand-pvc"},
		"field-manager":  {"rollout", "rollout resume", "rollout undo", "rollout abort", "scale-down", "cleanup-pvcs", "expand-pvc"},
		"timeout":        {"rollout", "rollout resume", "rollout undo", "scale-down", "cleanup-pvcs", "expand-pvc"},
		"step-timeout":   {"rollout", "scale-down", "cleanup-pvcs", "expand-pvc"},
		"template":       {"status", "rollout", "rollout resume", "rollout undo", "rollout abort", "rollout status", "scale-down", "cleanup-pvcs", "expand-pvc"},
	}
	for flag, paths := range groups {
		usage := ""
		for _, path := range paths {
			c, _, err := root.Find(strings.Fields(path))
			require.NoError(t, err)
			fl := c.Flags().Lookup(flag)
			if !assert.NotNil(t, fl, "%s --%s", path, flag) {
				continue
			}
			if flag == "step-timeout" {
				assert.True(t, strings.HasPrefix(fl.Usage, "How long "), "%s --%s: %q", path, flag, fl.Usage)
				continue
			}
			if usage == "" {
				usage = fl.Usage
			}
			assert.Equal(t, usage, fl.Usage, "%s --%s has its own help text", path, flag)
		}
	}
	for _, path := range []string{"status", "rollout", "rollout resume", "rollout undo", "rollout abort", "rollout status", "scale-down", "cleanup-pvcs", "expand-pvc"} {
		c, _, err := root.Find(strings.Fields(path))
		require.NoError(t, err)
		fl := c.Flags().Lookup("output")
		require.NotNil(t, fl, path)
		assert.Contains(t, fl.Usage, "json, yaml, name, jsonpath=..., jsonpath-file=..., go-template=..., go-template-file=...", path)
	}
}
