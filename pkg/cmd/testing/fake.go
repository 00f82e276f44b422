// Package testing builds the fake twin of the shared command options, so
// every command runs in-process against buffers and a fake cluster.
package testing

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
)

// FakeNow is the clock of fake options, so ages in output are stable.
var FakeNow = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// Fake is a command environment: options plus what a test inspects.
type Fake struct {
	Options *cmdutil.Options
	Client  *kube.Client
	Exec    *kubefake.Executor
	In      *bytes.Buffer
	Out     *bytes.Buffer
	ErrOut  *bytes.Buffer
}

// NewFakeOptions returns options over a fake cluster seeded with objs,
// buffers for the streams, a fixed clock, no colour and no terminal.
func NewFakeOptions(objs ...runtime.Object) *Fake {
	client, ex := kubefake.NewClient(objs...)
	return NewFakeOptionsWithClient(client, ex)
}

// NewFakeOptionsWithClient is NewFakeOptions over a given client, e.g. one
// connected to the test bed.
func NewFakeOptionsWithClient(client *kube.Client, ex *kubefake.Executor) *Fake {
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	o := cmdutil.NewOptionsWithClient(streams, client)
	o.Now = func() time.Time { return FakeNow }
	o.Getenv = func(string) string { return "" }
	o.StdinIsTerminal = func() bool { return false }
	return &Fake{Options: o, Client: client, Exec: ex, In: in, Out: out, ErrOut: errOut}
}

// Runner is the signature of cmd.Run, passed in to avoid an import cycle.
type Runner func(ctx context.Context, o *cmdutil.Options, args []string) int

// Run executes args and returns the exit code.
func (f *Fake) Run(ctx context.Context, run Runner, args ...string) int {
	return run(ctx, f.Options, args)
}

// AnswerServerDryRun makes the fake API server answer every write sent
// with dryRun=All as a real one does: judged by refuse, never persisted.
// It returns the writes it saw so far, as "verb resource".
func (f *Fake) AnswerServerDryRun(refuse func(k8stesting.Action) error) func() []string {
	var mu sync.Mutex
	var seen []string
	f.Client.Kube.(*fake.Clientset).PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var dry []string
		switch a := a.(type) {
		case k8stesting.CreateActionImpl:
			dry = a.CreateOptions.DryRun
		case k8stesting.UpdateActionImpl:
			dry = a.UpdateOptions.DryRun
		case k8stesting.PatchActionImpl:
			dry = a.PatchOptions.DryRun
		case k8stesting.DeleteActionImpl:
			dry = a.DeleteOptions.DryRun
		}
		if !slices.Equal(dry, []string{metav1.DryRunAll}) {
			return false, nil, nil
		}
		mu.Lock()
		seen = append(seen, a.GetVerb()+" "+a.GetResource().Resource)
		mu.Unlock()
		return true, nil, refuse(a)
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
