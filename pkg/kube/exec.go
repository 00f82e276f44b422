package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// ExecRequest names a command to run inside a container of a pod.
type ExecRequest struct {
	Namespace string
	Pod       string
	// Container may be empty when the pod has a single container.
	Container string
	Command   []string
	// Stdin is attached only when set; commands never read the terminal.
	Stdin io.Reader
}

// ExecResult is what a command printed and how it exited.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Executor runs commands inside pods.
type Executor interface {
	Exec(ctx context.Context, req ExecRequest) (ExecResult, error)
}

// ExitError reports a command that ran and exited non-zero.
type ExitError struct {
	Pod      string
	Command  []string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("command %q in pod %s exited with code %d", e.Command, e.Pod, e.ExitCode)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// PodExecutor runs commands through the pods/exec subresource, over
// WebSocket first and SPDY when the server or a proxy cannot upgrade.
type PodExecutor struct {
	config *rest.Config
	client kubernetes.Interface
}

// NewPodExecutor returns an executor for the given cluster.
func NewPodExecutor(config *rest.Config, client kubernetes.Interface) *PodExecutor {
	return &PodExecutor{config: config, client: client}
}

// Exec runs the command and captures its output. A non-zero exit is not an
// error of the transport: it is returned in ExitCode with a nil error.
func (e *PodExecutor) Exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	if len(req.Command) == 0 {
		return ExecResult{}, errors.New("exec: empty command")
	}
	opts := &corev1.PodExecOptions{
		Container: req.Container,
		Command:   req.Command,
		Stdin:     req.Stdin != nil,
		Stdout:    true,
		Stderr:    true,
	}
	u := e.client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(req.Namespace).Name(req.Pod).
		SubResource("exec").
		VersionedParams(opts, scheme.ParameterCodec).URL()

	ws, err := remotecommand.NewWebSocketExecutor(e.config, "GET", u.String())
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in pod %s: %w", req.Pod, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.config, "POST", u)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in pod %s: %w", req.Pod, err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in pod %s: %w", req.Pod, err)
	}
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{
		Stdin:  req.Stdin,
		Stdout: &stdout,
		Stderr: &stderr,
	})
	res := ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err == nil {
		return res, nil
	}
	if code, ok := exitCode(err); ok {
		res.ExitCode = code
		return res, nil
	}
	return res, fmt.Errorf("exec %q in pod %s/%s: %w", req.Command, req.Namespace, req.Pod, err)
}

// exitCode reads a command's exit code from the status of the exec
// protocol (reason NonZeroExitCode), which client-go returns as a
// CodeExitError. Any other error is a failure of the exec itself.
func exitCode(err error) (int, bool) {
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.ExitStatus(), true
	}
	var ep utilexec.ExitError
	if errors.As(err, &ep) && ep.Exited() {
		return ep.ExitStatus(), true
	}
	return 0, false
}

// Run executes the request and turns a non-zero exit into an *ExitError,
// for callers that only care whether the command succeeded.
func Run(ctx context.Context, ex Executor, req ExecRequest) ([]byte, error) {
	res, err := ex.Exec(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return res.Stdout, &ExitError{Pod: req.Pod, Command: req.Command, ExitCode: res.ExitCode, Stderr: string(bytes.TrimSpace(res.Stderr))}
	}
	return res.Stdout, nil
}
