// Package kube is the one Kubernetes client every command shares: the typed
// clientset, the REST config, the resolved namespace and a pod executor, built
// once from kubectl's standard connection flags.
package kube

import (
	"fmt"
	"io"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Client bundles what the workflows need to talk to a cluster.
type Client struct {
	// Kube is the typed clientset.
	Kube kubernetes.Interface
	// Config is the REST config the clientset was built from; nil in fakes.
	Config *rest.Config
	// Namespace is the namespace resolved from --namespace, the kubeconfig
	// context, or "default".
	Namespace string
	// NamespaceExplicit is true when the user named the namespace with -n.
	NamespaceExplicit bool
	// Dynamic reaches APIs without typed clients (VolumeSnapshots); nil in
	// fakes that do not need it.
	Dynamic dynamic.Interface
	// Exec runs commands inside pods.
	Exec Executor

	// server caches what discovery said about the API server (Server).
	server *serverCache
}

// The client's own rate limit, when the kubeconfig sets none: client-go's
// default (5 requests a second, bursts of 10, per API group) would pace a
// staged rollout of fast pods, three requests a step, instead of the
// controller. The API server's priority and fairness still protects it.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// NewClient builds the shared client from kubectl's connection flags.
// API warnings go to warnings (the command's error stream), never stdout.
func NewClient(flags genericclioptions.RESTClientGetter, warnings io.Writer) (*Client, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("cannot load the cluster configuration: %w (check --kubeconfig and --context)", err)
	}
	ns, explicit, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("cannot resolve the namespace: %w", err)
	}
	return NewClientForConfig(cfg, ns, explicit, warnings, DefaultRetry())
}

// NewClientForConfig builds the shared client over cfg, retrying transient
// API failures as retry says.
func NewClientForConfig(cfg *rest.Config, ns string, explicit bool, warnings io.Writer, retry Retry) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	if warnings != nil {
		cfg.WarningHandler = rest.NewWarningWriter(warnings, rest.WarningWriterOptions{Deduplicate: true})
	}
	cfg.Wrap(retry.Shared().Wrap)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot build a Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot build a Kubernetes client: %w", err)
	}
	return &Client{
		Kube:              cs,
		Config:            cfg,
		Namespace:         ns,
		NamespaceExplicit: explicit,
		Dynamic:           dyn,
		Exec:              NewPodExecutor(cfg, cs),
	}, nil
}
