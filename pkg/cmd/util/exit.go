package util

import (
	"errors"
	"fmt"
)

// Exit codes shared by every command; docs/exit-codes.md lists them.
const (
	ExitOK = 0
	// ExitFailed: the command failed (cluster unreachable, API error, timeout).
	ExitFailed = 1
	// ExitUsage: bad input; nothing was changed.
	ExitUsage = 2
	// ExitDegraded: status found the StatefulSet unhealthy.
	ExitDegraded = 3
	// ExitRolledBack: a workflow failed a gate and rolled back cleanly.
	ExitRolledBack = 4
	// ExitNeedsAttention: a workflow failed and left state a person must look
	// at (rollback disabled or itself failed, operation stopped mid-way).
	ExitNeedsAttention = 5
	// ExitPaused: a workflow stopped at an approval point and waits for resume.
	ExitPaused = 6
	// ExitInterrupted: the user interrupted the command (Ctrl-C).
	ExitInterrupted = 130
)

// ExitError carries a specific exit code out of a command. Err may be nil
// when the command already reported everything it had to say.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// WithExitCode wraps err so the command exits with code.
func WithExitCode(code int, err error) error { return &ExitError{Code: code, Err: err} }

// UsageError marks bad input: the command shows a pointer to its help and
// exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// UsageErrorf builds a UsageError.
func UsageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is bad input.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}
