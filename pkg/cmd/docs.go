package cmd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// GenerateReference writes one markdown page per command into dir. Flag
// defaults that depend on the machine are replaced with their meaning, so
// the pages are the same wherever they are generated.
func GenerateReference(dir string) error {
	streams := genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: io.Discard, ErrOut: io.Discard}
	root := NewCmdRoot(cmdutil.NewOptions(streams))
	root.DisableAutoGenTag = true
	// cobra adds the completion command at execution; the reference lists it too.
	root.InitDefaultCompletionCmd()
	if f := root.PersistentFlags().Lookup("cache-dir"); f != nil {
		f.DefValue = "$HOME/.kube/cache"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	visit(root, func(c *cobra.Command) { c.DisableAutoGenTag = true })
	return doc.GenMarkdownTreeCustom(root, dir, func(string) string { return "" }, func(name string) string {
		return filepath.Base(name)
	})
}

func visit(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		visit(sub, fn)
	}
}
