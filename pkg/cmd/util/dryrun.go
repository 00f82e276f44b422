package util

import (
	"fmt"
	"io"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// WriteDryRunWrites renders the answers of a server-side dry run, one line
// per write.
func WriteDryRunWrites(w io.Writer, writes []kube.DryRunWrite) {
	fmt.Fprintln(w, "Server dry run (sent with dryRun=All; nothing was changed):")
	for _, x := range writes {
		if x.Refused != "" {
			fmt.Fprintf(w, "  refused   %s: %s\n", x.Write, x.Refused)
			continue
		}
		fmt.Fprintf(w, "  accepted  %s\n", x.Write)
	}
}
