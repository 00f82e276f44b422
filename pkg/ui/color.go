// Package ui renders models for people: lipgloss styling on a terminal,
// plain greppable lines elsewhere. It never decides what to say, only how.
package ui

import (
	"fmt"
	"io"
	"os"

	"charm.land/lipgloss/v2"
	"golang.org/x/term"
)

// Color modes accepted by --color.
const (
	ColorAuto   = "auto"
	ColorAlways = "always"
	ColorNever  = "never"
)

// ColorEnabled decides whether to style output written to out.
// NO_COLOR (any non-empty value) wins over auto, never over always.
func ColorEnabled(mode string, out io.Writer, getenv func(string) string) (bool, error) {
	switch mode {
	case ColorAlways:
		return true, nil
	case ColorNever:
		return false, nil
	case ColorAuto, "":
		if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
			return false, nil
		}
		return IsTerminal(out), nil
	default:
		return false, fmt.Errorf("invalid --color %q: use auto, always or never", mode)
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Theme styles the few kinds of text the commands emphasise. The zero
// Theme renders plain text.
type Theme struct {
	color bool
	good  lipgloss.Style
	warn  lipgloss.Style
	bad   lipgloss.Style
	faint lipgloss.Style
	bold  lipgloss.Style
}

// NewTheme returns a Theme; with color false every method returns its input.
func NewTheme(color bool) Theme {
	return Theme{
		color: color,
		good:  lipgloss.NewStyle().Foreground(lipgloss.Green),
		warn:  lipgloss.NewStyle().Foreground(lipgloss.Yellow),
		bad:   lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
		faint: lipgloss.NewStyle().Faint(true),
		bold:  lipgloss.NewStyle().Bold(true),
	}
}

// Color reports whether this theme styles text.
func (t Theme) Color() bool { return t.color }

func (t Theme) render(s lipgloss.Style, text string) string {
	if !t.color {
		return text
	}
	return s.Render(text)
}

// Good styles healthy states.
func (t Theme) Good(s string) string { return t.render(t.good, s) }

// Warn styles states that need a look.
func (t Theme) Warn(s string) string { return t.render(t.warn, s) }

// Bad styles failures.
func (t Theme) Bad(s string) string { return t.render(t.bad, s) }

// Faint styles secondary detail.
func (t Theme) Faint(s string) string { return t.render(t.faint, s) }

// Bold styles headings.
func (t Theme) Bold(s string) string { return t.render(t.bold, s) }
