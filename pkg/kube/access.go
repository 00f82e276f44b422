package kube

import (
	"context"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Access is one permission a workflow needs: a verb on a resource (or a
// subresource of it) of an API group.
type Access struct {
	Verb, Group, Resource, Subresource string
}

// String names the access as RBAC rules and kubectl auth can-i do:
// "delete persistentvolumeclaims", "patch statefulsets.apps",
// "create pods/exec".
func (a Access) String() string {
	s := a.Verb + " " + a.Resource
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	return s
}

// Denied asks the API server, as kubectl auth can-i does (a
// SelfSubjectAccessReview each), which of accesses the caller does not
// have in namespace ns. A workflow asks before its first change, so that a
// missing permission stops it there rather than part-way. An error means
// the server could not be asked (e.g. reviews are not allowed): no
// verdict.
func Denied(ctx context.Context, client kubernetes.Interface, ns string, accesses []Access) ([]Access, error) {
	var denied []Access
	for _, a := range accesses {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource,
			},
		}}
		got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		// No authorizer allowing it is a refusal, whether one denied it
		// outright or none had an opinion.
		if !got.Status.Allowed {
			denied = append(denied, a)
		}
	}
	return denied, nil
}
