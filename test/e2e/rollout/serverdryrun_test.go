package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

const policyMessage = "images from forbidden.example are not allowed"

// forbidImages installs a ValidatingAdmissionPolicy, bound to namespace ns
// only, that refuses StatefulSets whose pod template uses an image from
// forbidden.example, and waits until the API server enforces it.
func forbidImages(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	name := "forbid-images-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: `object.spec.template.spec.containers.all(c, !c.image.startsWith('forbidden.example/'))`,
				Message:    policyMessage,
			}},
		},
	}
	_, err := cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{})
	require.NoError(t, err)
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	_, err = cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// The API server picks policies up from an informer: wait until a
	// dry-run write of a forbidden image is refused.
	probe := fmt.Appendf(nil, `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"forbidden.example/probe"}]}}}}`)
	e2eutil.Poll{Timeout: 30 * time.Second}.Until(t, "the admission policy to be enforced", func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.StrategicMergePatchType, probe, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return true, nil
		}
		return false, err
	})
}

func TestServerDryRunFindsAnAdmissionPolicyRefusal(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2))
	forbidImages(t, ns)
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	res := run(t, ns, "rollout", "db", "--staged", "--image", "app=forbidden.example/db:1", "--dry-run=server")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.Out, "  accepted  create configmap kubectl-sts.db (the operation record)\n")
	assert.Contains(t, res.Out, "  refused   update statefulset db (new pod template, partition 2): ")
	assert.Contains(t, res.ErrOut, "the API server would refuse update statefulset db (new pod template, partition 2)")
	assert.Contains(t, res.ErrOut, policyMessage)

	// The same dry run of an allowed image is accepted.
	res = run(t, ns, "rollout", "db", "--staged", "--image", "app="+imageV2, "--dry-run=server")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "  accepted  update statefulset db (new pod template, partition 2)\n")

	// Nothing was persisted: not the template, not the record.
	after := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, before.Generation, after.Generation)
	assert.Equal(t, imageV1, after.Spec.Template.Spec.Containers[0].Image)
	_, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), journal.ConfigMapName("db"), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "no record: %v", err)
}
