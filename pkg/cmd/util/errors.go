package util

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
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
			if p := missingPermission(status.Status().Message); p != "" {
				return fmt.Errorf("%w\nmissing permission: %s; see docs/rbac.md for the Role kubectl-sts needs", err, p)
			}
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

// rbacDenied matches the API server's RBAC denial, e.g. `User "u" cannot
// list resource "pods" in API group "" in the namespace "db"`.
var rbacDenied = regexp.MustCompile(`cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)"| (at the cluster scope))?`)

// missingPermission names the verb, resource and scope a forbidden message
// says are missing, or "" when the message has another form.
func missingPermission(msg string) string {
	m := rbacDenied.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	verb, resource, group, ns, cluster := m[1], m[2], m[3], m[4], m[5]
	if group != "" {
		resource += "." + group
	}
	out := fmt.Sprintf("verb %q on resource %q", verb, resource)
	switch {
	case ns != "":
		out += fmt.Sprintf(" in namespace %q", ns)
	case cluster != "":
		out += " at the cluster scope (all namespaces)"
	}
	return out
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
