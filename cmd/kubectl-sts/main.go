// Command kubectl-sts is the kubectl plugin for StatefulSet day-2 operations.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
)

func main() {
	os.Exit(cmd.Execute(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
