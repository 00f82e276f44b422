package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	utilexec "k8s.io/client-go/util/exec"
)

func TestExitCodeReadsTheExecProtocolStatus(t *testing.T) {
	// What client-go returns for a NonZeroExitCode status.
	code, ok := exitCode(utilexec.CodeExitError{Err: errors.New("command terminated with non-zero exit code"), Code: 3})
	assert.True(t, ok)
	assert.Equal(t, 3, code)

	code, ok = exitCode(fmt.Errorf("stream: %w", utilexec.CodeExitError{Err: errors.New("x"), Code: 42}))
	assert.True(t, ok, "a wrapped exit is still an exit")
	assert.Equal(t, 42, code)

	// Any utilexec.ExitError that exited counts; one that did not (killed
	// by a signal) is no exit code.
	code, ok = exitCode(exitErr{exited: true, status: 7})
	assert.True(t, ok)
	assert.Equal(t, 7, code)
	_, ok = exitCode(exitErr{exited: false, status: -1})
	assert.False(t, ok)
}

type exitErr struct {
	exited bool
	status int
}

func (e exitErr) Error() string   { return "exit" }
func (e exitErr) String() string  { return "exit" }
func (e exitErr) Exited() bool    { return e.exited }
func (e exitErr) ExitStatus() int { return e.status }

func TestExitCodeDoesNotGuessFromMessages(t *testing.T) {
	// A failure of the exec itself stays an error whatever its message
	// says, even when a runtime words a command's exit in it.
	for _, err := range []error{
		errors.New("error executing remote command: error executing command in container: cmd wait: sh -c exit 3: exit status 3"),
		errors.New("unable to upgrade connection: container not found"),
		context.DeadlineExceeded,
	} {
		_, ok := exitCode(err)
		assert.False(t, ok, "%v", err)
	}
}

func TestPodExecutorRefusesAnEmptyCommand(t *testing.T) {
	_, err := NewPodExecutor(nil, nil).Exec(context.Background(), ExecRequest{Namespace: "db", Pod: "db-0"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty command")
}

type scripted struct {
	res ExecResult
	err error
}

func (s scripted) Exec(context.Context, ExecRequest) (ExecResult, error) { return s.res, s.err }

func TestRunTurnsANonZeroExitIntoAnExitError(t *testing.T) {
	req := ExecRequest{Namespace: "db", Pod: "db-0", Command: []string{"psql", "-c", "select 1"}}

	out, err := Run(context.Background(), scripted{res: ExecResult{Stdout: []byte("1\n")}}, req)
	require.NoError(t, err)
	assert.Equal(t, "1\n", string(out))

	out, err = Run(context.Background(), scripted{res: ExecResult{Stdout: []byte("partial"), Stderr: []byte("  FATAL: no such role\n"), ExitCode: 2}}, req)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode)
	assert.Equal(t, "partial", string(out), "what the command printed is kept")
	assert.Equal(t, `command ["psql" "-c" "select 1"] in pod db-0 exited with code 2: FATAL: no such role`, err.Error())

	_, err = Run(context.Background(), scripted{res: ExecResult{ExitCode: 1}}, req)
	assert.Equal(t, `command ["psql" "-c" "select 1"] in pod db-0 exited with code 1`, err.Error(), "no stderr, no trailing colon")

	transport := errors.New("connection reset")
	_, err = Run(context.Background(), scripted{err: transport}, req)
	assert.ErrorIs(t, err, transport)
	assert.False(t, errors.As(err, &ee), "a transport failure is not an exit")
	assert.False(t, strings.Contains(err.Error(), "exited"))
}
