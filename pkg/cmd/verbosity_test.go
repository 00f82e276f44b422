package cmd

import (
	"context"
	"flag"
	"testing"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"

	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

// With -v the commands run with klog's logger in their context, so that
// client-go logs the informers' lists and watches too (the watch layer
// silences a context without a logger); without -v nothing is added.
func TestVerbosityPutsTheLoggerIntoTheContext(t *testing.T) {
	t.Cleanup(func() {
		fs := flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(fs)
		_ = fs.Set("v", "0")
	})
	for _, tc := range []struct {
		args   []string
		logger bool
	}{
		{[]string{"probe"}, false},
		{[]string{"probe", "-v=6"}, true},
	} {
		f := cmdtesting.NewFakeOptions()
		var has bool
		code := f.Run(context.Background(), func(ctx context.Context, o *cmdutil.Options, args []string) int {
			root := NewCmdRoot(o)
			root.AddCommand(&cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := logr.FromContext(cmd.Context())
				has = err == nil
				return nil
			}})
			root.SetArgs(args)
			c, err := root.ExecuteContextC(ctx)
			return HandleError(o, c, err)
		}, tc.args...)
		require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
		assert.Equal(t, tc.logger, has, "%v", tc.args)
	}
}
