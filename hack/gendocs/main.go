// Command gendocs writes the command reference into docs/reference.
package main

import (
	"fmt"
	"os"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
)

func main() {
	dir := "docs/reference"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if err := cmd.GenerateReference(dir); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
