// Command testbed-cluster starts a long-lived test bed cluster for people
// (hack/cluster-up.sh) and prints its kubeconfig path. hack/cluster-down.sh
// deletes it.
//
//	testbed-cluster -name NAME -workdir DIR [-nodes N]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

func main() {
	name := flag.String("name", "kubectl-sts-dev", "cluster name")
	workDir := flag.String("workdir", "", "directory for the cluster's files (required)")
	nodes := flag.Int("nodes", 3, "number of fake nodes")
	flag.Parse()
	if *workDir == "" {
		fmt.Fprintln(os.Stderr, "testbed-cluster: -workdir is required")
		os.Exit(2)
	}

	kubeconfig := filepath.Join(*workDir, "kwok", "clusters", *name, "kubeconfig.yaml")
	if _, err := os.Stat(kubeconfig); err == nil {
		if err := answers(kubeconfig); err != nil {
			fmt.Fprintf(os.Stderr, "cluster %s exists but does not answer (%v); was the machine restarted? "+
				"Run hack/cluster-down.sh %s, then start it again\n", *name, err, *name)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "cluster %s is already running (hack/cluster-down.sh %s deletes it)\n", *name, *name)
		fmt.Println(kubeconfig)
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := testbed.Start(ctx, testbed.Options{
		Name:      *name,
		ExactName: true,
		WorkDir:   *workDir,
		Nodes:     *nodes,
		Logf:      func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The cluster keeps running after this process exits.
	fmt.Println(c.Kubeconfig)
}

// answers checks that the API server of an existing cluster is up.
func answers(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.Timeout = 3 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = client.Discovery().ServerVersion()
	return err
}
