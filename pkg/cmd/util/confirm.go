package util

import (
	"bufio"
	"fmt"
	"strings"
)

// Confirm asks the user to approve a destructive plan. yes (--yes) skips
// the question; without a terminal to ask on it refuses, so a script never
// changes anything it was not told to.
func (o *Options) Confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	if o.StdinIsTerminal == nil || !o.StdinIsTerminal() {
		return UsageErrorf("%s needs confirmation, and there is no terminal to ask on: re-run with --yes to proceed, or --dry-run to see the plan", question)
	}
	fmt.Fprintf(o.ErrOut, "%s [y/N]: ", question)
	line, err := bufio.NewReader(o.In).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("no answer read: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return WithExitCode(ExitFailed, fmt.Errorf("not confirmed; nothing was changed"))
}
