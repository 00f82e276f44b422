package util

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Explain turns common API failures into messages that say what to do.
// namespace is the namespace the command worked in, for hints.
func Explain(err error, namespace string) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		switch {
		case apierrors.IsNotFound(err):
			if d := status.Status().Details; d != nil && d.Kind == "statefulsets" {
				return fmt.Errorf("%w in namespace %q (list them with: kubectl get sts -n %s, or pick another namespace with -n)", err, namespace, namespace)
			}
		case apierrors.IsForbidden(err):
			return fmt.Errorf("%w\nyour credentials lack this permission; see docs/rbac.md for the Role kubectl-sts needs", err)
		case apierrors.IsUnauthorized(err):
			return fmt.Errorf("%w\nthe cluster rejected your credentials; log in again or check --context/--kubeconfig", err)
		}
		return err
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		var opErr *net.OpError
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &opErr), errors.As(err, &dnsErr):
			return fmt.Errorf("cannot reach the Kubernetes API server at %s: %w\ncheck that the cluster is running and that --context/--kubeconfig point at it", hostOf(uerr.URL), err)
		}
	}
	return err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
