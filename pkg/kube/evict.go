package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// DefaultEvictionRetry is how often a refused eviction is retried, as
// kubectl drain does.
const DefaultEvictionRetry = 5 * time.Second

// EvictionBlockedError reports an eviction that PodDisruptionBudgets kept
// refusing until the operation's time ran out. The pod is untouched.
type EvictionBlockedError struct {
	Namespace string
	Pod       string
	// Budgets names the PodDisruptionBudgets that select the pod.
	Budgets []string
	// Message is the API server's last refusal.
	Message string
}

func (e *EvictionBlockedError) Error() string {
	return fmt.Sprintf("pod %s was not evicted: %s refused it until the time ran out (%s)", e.Pod, budgetNames(e.Budgets), e.Message)
}

func budgetNames(budgets []string) string {
	if len(budgets) == 0 {
		return "a PodDisruptionBudget"
	}
	return "PodDisruptionBudget " + strings.Join(budgets, ", ")
}

// Evictor removes healthy pods through the Eviction API, so that
// PodDisruptionBudgets hold, as kubectl drain does.
type Evictor struct {
	Client kubernetes.Interface
	// Retry is the pause between refused attempts; zero means
	// DefaultEvictionRetry.
	Retry time.Duration
	// Blocked is told, once per distinct refusal, which budgets hold the
	// pod and what the API server said; may be nil.
	Blocked func(budgets []string, message string)
}

// Evict evicts pod ns/name if its UID is still uid. While a budget refuses
// (429 Too Many Requests), it retries until ctx ends, then returns an
// *EvictionBlockedError. A pod already gone or replaced is not an error.
func (e Evictor) Evict(ctx context.Context, ns, name string, uid types.UID) error {
	retry := e.Retry
	if retry <= 0 {
		retry = DefaultEvictionRetry
	}
	ev := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: name, Namespace: ns},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}},
	}
	var last string
	var budgets []string
	for {
		err := e.Client.CoreV1().Pods(ns).EvictV1(ctx, ev)
		switch {
		case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
			return nil
		case !apierrors.IsTooManyRequests(err):
			return fmt.Errorf("evicting pod %s: %w", name, err)
		}
		msg := refusal(err)
		if msg != last {
			last = msg
			budgets = e.budgetsOf(ctx, ns, name)
			if e.Blocked != nil {
				e.Blocked(budgets, msg)
			}
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return &EvictionBlockedError{Namespace: ns, Pod: name, Budgets: budgets, Message: last}
		case <-t.C:
		}
	}
}

// refusal is the most precise text of a refused eviction: the budget's own
// cause ("The disruption budget db needs 2 healthy pods and has 2
// currently") when the server gives one.
func refusal(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			if c.Type == policyv1.DisruptionBudgetCause && c.Message != "" {
				return c.Message
			}
		}
	}
	return err.Error()
}

// budgetsOf names the budgets selecting the pod; best effort, for messages.
func (e Evictor) budgetsOf(ctx context.Context, ns, name string) []string {
	pod, err := e.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	pdbs, err := e.Client.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	return selecting(pod, pdbs.Items)
}

func selecting(pod *corev1.Pod, pdbs []policyv1.PodDisruptionBudget) []string {
	var out []string
	for _, b := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, b.Name)
	}
	return out
}
