package util

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Elsewhere turns "statefulset NAME not found" in namespace into where it
// is: the namespaces that have a StatefulSet of that name (add -n), or a
// namespace that does not exist. Any other error, or a look-up that fails,
// leaves err as it is.
func Elsewhere(ctx context.Context, client kubernetes.Interface, namespace string, err error) error {
	var status apierrors.APIStatus
	if client == nil || !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return err
	}
	d := status.Status().Details
	if d == nil || d.Kind != "statefulsets" || d.Name == "" {
		return err
	}
	name := d.Name
	if _, nsErr := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); apierrors.IsNotFound(nsErr) {
		return fmt.Errorf("statefulset %q not found: namespace %q does not exist (list namespaces with: kubectl get namespaces, or pick another with -n)", name, namespace)
	}
	others, listErr := client.AppsV1().StatefulSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
	})
	if listErr != nil {
		return err
	}
	var where []string
	for _, s := range others.Items {
		if s.Name == name && s.Namespace != namespace {
			where = append(where, fmt.Sprintf("%q", s.Namespace))
		}
	}
	if len(where) == 0 {
		return err
	}
	first := strings.Trim(where[0], `"`)
	return fmt.Errorf("statefulset %q not found in namespace %q, but it exists in namespace %s: add -n %s", name, namespace, strings.Join(where, ", "), first)
}
