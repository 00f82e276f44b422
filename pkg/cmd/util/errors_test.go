package util

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// forbidden is the API server's RBAC denial as clients receive it.
func forbidden(gr schema.GroupResource, name, reason string) error {
	return apierrors.NewForbidden(gr, name, errors.New(reason))
}

func TestExplainNamesTheMissingRBACPermission(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{
			name: "namespaced, core group",
			err:  forbidden(schema.GroupResource{Resource: "pods"}, "", `User "dev" cannot list resource "pods" in API group "" in the namespace "db"`),
			want: `missing permission: verb "list" on resource "pods" in namespace "db"; see docs/rbac.md for the Role kubectl-sts needs`,
		},
		{
			name: "namespaced, named group",
			err:  forbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db", `User "dev" cannot patch resource "statefulsets" in API group "apps" in the namespace "prod"`),
			want: `missing permission: verb "patch" on resource "statefulsets.apps" in namespace "prod"`,
		},
		{
			name: "subresource",
			err:  forbidden(schema.GroupResource{Resource: "pods"}, "db-0", `User "dev" cannot create resource "pods/exec" in API group "" in the namespace "db"`),
			want: `missing permission: verb "create" on resource "pods/exec" in namespace "db"`,
		},
		{
			name: "cluster scope",
			err:  forbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, "fast", `User "dev" cannot get resource "storageclasses" in API group "storage.k8s.io" at the cluster scope`),
			want: `missing permission: verb "get" on resource "storageclasses.storage.k8s.io" at the cluster scope (all namespaces)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(tc.err, "db")
			assert.ErrorIs(t, got, tc.err, "the API error stays inspectable")
			assert.True(t, apierrors.IsForbidden(got))
			assert.Contains(t, got.Error(), tc.err.Error(), "the server's message is kept")
			assert.Contains(t, got.Error(), "\n"+tc.want)
		})
	}
}

func TestExplainForbiddenOfAnotherFormStillPointsAtTheRole(t *testing.T) {
	err := forbidden(schema.GroupResource{Resource: "pods"}, "db-0", "denied by the admission webhook policy.example")
	got := Explain(err, "db")
	assert.ErrorIs(t, got, err)
	assert.Contains(t, got.Error(), "\nyour credentials lack this permission; see docs/rbac.md for the Role kubectl-sts needs")
	assert.NotContains(t, got.Error(), "missing permission:")
}

func TestExplainStatefulSetNotFoundSaysWhereItLooked(t *testing.T) {
	err := apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db")
	got := Explain(err, "prod")
	assert.ErrorIs(t, got, err)
	assert.True(t, apierrors.IsNotFound(got))
	assert.Equal(t, `statefulsets.apps "db" not found in namespace "prod" (list them with: kubectl get sts -n prod, or pick another namespace with -n)`, got.Error())

	// Another kind that is not found is the workflow's to explain.
	other := apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "db-0")
	assert.Same(t, other, Explain(other, "prod"))
}

func TestExplainUnauthorizedSaysToLogInAgain(t *testing.T) {
	err := apierrors.NewUnauthorized("token expired")
	got := Explain(err, "db")
	assert.ErrorIs(t, got, err)
	assert.Contains(t, got.Error(), "\nthe cluster rejected your credentials; log in again or check --context/--kubeconfig")
}

func TestExplainUnreachableServerNamesIt(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/apis/apps/v1/namespaces/db/statefulsets/db?timeout=32s",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	noHost := &url.Error{Op: "Get", URL: "https://k8s.example:443/api", Err: &net.DNSError{Err: "no such host", Name: "k8s.example", IsNotFound: true}}
	for _, tc := range []struct {
		err  error
		host string
	}{
		{refused, "https://10.0.0.1:6443"},
		{noHost, "https://k8s.example:443"},
		{fmt.Errorf("listing pods: %w", refused), "https://10.0.0.1:6443"},
	} {
		got := Explain(tc.err, "db")
		assert.ErrorIs(t, got, tc.err)
		assert.True(t, strings.HasPrefix(got.Error(), "cannot reach the Kubernetes API server at "+tc.host+": "), got.Error())
		assert.True(t, strings.HasSuffix(got.Error(), "\ncheck that the cluster is running and that --context/--kubeconfig point at it"), got.Error())
	}
}

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	assert.NoError(t, Explain(nil, "db"))
	plain := errors.New("gate failed")
	assert.Same(t, plain, Explain(plain, "db"))
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db", errors.New("changed"))
	assert.Same(t, conflict, Explain(conflict, "db"))
	// A URL error that is not a connection failure (a bad certificate, say)
	// is not called unreachable.
	tlsErr := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: errors.New("x509: certificate signed by unknown authority")}
	assert.Same(t, error(tlsErr), Explain(tlsErr, "db"))
}

func TestMissingPermissionOfOtherMessagesIsEmpty(t *testing.T) {
	assert.Empty(t, missingPermission(""))
	assert.Empty(t, missingPermission("forbidden: exceeded quota"))
	assert.Equal(t, `verb "watch" on resource "pods"`, missingPermission(`cannot watch resource "pods"`))
}

func TestHostOf(t *testing.T) {
	assert.Equal(t, "https://h:6443", hostOf("https://h:6443/api?x=1"))
	assert.Equal(t, "not a url", hostOf("not a url"))
	assert.Equal(t, "%zz", hostOf("%zz"))
}
