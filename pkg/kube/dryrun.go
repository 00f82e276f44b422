package kube

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DryRunAll is the dryRun option of a server-side dry run: the API server
// runs validation, admission (webhooks, policies), quota and RBAC on the
// write and persists nothing.
func DryRunAll() []string { return []string{metav1.DryRunAll} }

// DryRunWrite is one write sent with dryRun=All and what the API server
// answered.
type DryRunWrite struct {
	// Write says what would be written, e.g. "update statefulset db".
	Write string `json:"write"`
	// Refused is the API server's refusal; empty when it accepted.
	Refused string `json:"refused,omitempty"`
}

// NewDryRunWrite records the answer err to the dry run of write.
func NewDryRunWrite(write string, err error) DryRunWrite {
	w := DryRunWrite{Write: write}
	if err != nil {
		w.Refused = err.Error()
	}
	return w
}

// RefusedError reports writes a server-side dry run found the API server
// would refuse; nothing was changed.
type RefusedError struct {
	Writes []DryRunWrite
}

func (e *RefusedError) Error() string {
	var parts []string
	for _, w := range e.Writes {
		parts = append(parts, fmt.Sprintf("%s: %s", w.Write, w.Refused))
	}
	return "the API server would refuse " + strings.Join(parts, "; ") + " (server dry run; nothing was changed)"
}

// CheckDryRun returns a RefusedError naming the refused writes, or nil.
func CheckDryRun(writes []DryRunWrite) error {
	var refused []DryRunWrite
	for _, w := range writes {
		if w.Refused != "" {
			refused = append(refused, w)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return &RefusedError{Writes: refused}
}

// DryRunConfigMap writes ConfigMap name (an operation record) as a run
// would first, with dryRun=All: created, or updated when one exists.
func DryRunConfigMap(ctx context.Context, c kubernetes.Interface, namespace, name string) DryRunWrite {
	api := c.CoreV1().ConfigMaps(namespace)
	cm, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
		_, err = api.Create(ctx, cm, metav1.CreateOptions{DryRun: DryRunAll()})
		return NewDryRunWrite("create configmap "+name+" (the operation record)", err)
	case err != nil:
		return NewDryRunWrite("read configmap "+name+" (the operation record)", err)
	}
	_, err = api.Update(ctx, cm, metav1.UpdateOptions{DryRun: DryRunAll()})
	return NewDryRunWrite("update configmap "+name+" (the operation record)", err)
}
