// Package kubefake is the in-process twin of package kube: a Client backed
// by client-go's fake clientset and a scripted pod executor, for fast tests.
package kubefake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// DefaultNamespace is the namespace a fake client resolves to.
const DefaultNamespace = "default"

// NewClient returns a kube.Client over a fake clientset seeded with objs,
// and the fake executor it uses.
func NewClient(objs ...runtime.Object) (*kube.Client, *Executor) {
	ex := &Executor{}
	cs := fake.NewClientset(objs...)
	honourGenerateName(cs)
	AllowAccessReviews(cs)
	return &kube.Client{
		Kube:      cs,
		Namespace: DefaultNamespace,
		Exec:      ex,
	}, ex
}

// honourGenerateName makes the fake clientset fill metadata.name from
// metadata.generateName as the API server does, so that objects such as
// Events, which are created with a generated name, do not collide.
func honourGenerateName(cs *fake.Clientset) {
	var n atomic.Int64
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		if m, err := meta.Accessor(obj); err == nil && m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), n.Add(1)))
		}
		return false, nil, nil
	})
}

// AllowAccessReviews makes the fake API server answer every
// SelfSubjectAccessReview with allowed, as for a cluster admin (the fake
// clientset would return the review unanswered, which reads as denied). A
// test of a missing permission prepends a reactor of its own.
func AllowAccessReviews(cs *fake.Clientset) {
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		review.Status.Allowed = true
		return true, review, nil
	})
}

// Handler answers one exec request.
type Handler func(req kube.ExecRequest) (kube.ExecResult, error)

// Executor records every request and answers from handlers registered per
// pod; a request for a pod with no handler fails like an unreachable pod.
type Executor struct {
	mu       sync.Mutex
	handlers map[string]Handler
	fallback Handler
	calls    []kube.ExecRequest
}

// Handle registers the handler for commands run in pod (any namespace).
func (e *Executor) Handle(pod string, h Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.handlers == nil {
		e.handlers = map[string]Handler{}
	}
	e.handlers[pod] = h
}

// HandleAll registers the handler for pods without their own.
func (e *Executor) HandleAll(h Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fallback = h
}

// Exec implements kube.Executor.
func (e *Executor) Exec(ctx context.Context, req kube.ExecRequest) (kube.ExecResult, error) {
	if err := ctx.Err(); err != nil {
		return kube.ExecResult{}, err
	}
	e.mu.Lock()
	e.calls = append(e.calls, req)
	h, ok := e.handlers[req.Pod]
	if !ok {
		h = e.fallback
	}
	e.mu.Unlock()
	if h == nil {
		return kube.ExecResult{}, fmt.Errorf("fake exec: no handler for pod %s", req.Pod)
	}
	return h(req)
}

// Calls returns the requests seen so far, in order.
func (e *Executor) Calls() []kube.ExecRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]kube.ExecRequest(nil), e.calls...)
}

// Reply is a Handler that always prints stdout and exits with code.
func Reply(stdout string, code int) Handler {
	return func(kube.ExecRequest) (kube.ExecResult, error) {
		return kube.ExecResult{Stdout: []byte(stdout), ExitCode: code}, nil
	}
}

// CommandLine joins a request's command for matching in tests.
func CommandLine(req kube.ExecRequest) string { return strings.Join(req.Command, " ") }
