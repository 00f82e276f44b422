package expand

import (
	"context"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// server asks discovery which Kubernetes the claims live in; a server that
// does not answer is taken as the newest tested minor (the API server
// itself still refuses what it does not allow).
func (e *Expander) server(ctx context.Context) kube.Server {
	v, err := e.cfg.Client.Discovery().ServerVersionWithContext(ctx)
	if err != nil {
		return kube.Server{}
	}
	return kube.ParseServer(v.GitVersion)
}
