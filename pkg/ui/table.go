package ui

import (
	"io"
	"strings"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
)

// Tone is the emphasis of a table cell; it only shows on colour output.
type Tone int

// Tones.
const (
	ToneNone Tone = iota
	ToneGood
	ToneWarn
	ToneBad
	ToneFaint
)

// Cell is one table cell.
type Cell struct {
	Text string
	Tone Tone
}

// Plain is a cell without emphasis.
func Plain(s string) Cell { return Cell{Text: s} }

// Table is a header and rows of cells, rendered as aligned columns.
type Table struct {
	Headers []string
	Rows    [][]Cell
	// MaxWidth bounds the rendered width when positive: the Shrink
	// columns give up width, in order, down to their minimum, and their
	// longer cells are shortened in the middle with "…".
	MaxWidth int
	Shrink   []Shrink
}

// Shrink lets column Col of a table narrow to Min characters.
type Shrink struct{ Col, Min int }

// DefaultWidth is the width a default (not wide) table fits.
const DefaultWidth = 120

// fit returns tb with cells shortened so that it renders within MaxWidth,
// as far as its Shrink columns allow.
func fit(tb Table) Table {
	if tb.MaxWidth <= 0 || len(tb.Shrink) == 0 {
		return tb
	}
	widths := columnWidths(tb)
	total := len(columnGap) * (len(widths) - 1)
	for _, w := range widths {
		total += w
	}
	over := total - tb.MaxWidth
	if over <= 0 {
		return tb
	}
	limit := map[int]int{}
	for _, sh := range tb.Shrink {
		if over <= 0 || sh.Col >= len(widths) {
			continue
		}
		give := min(over, widths[sh.Col]-sh.Min)
		if give <= 0 {
			continue
		}
		widths[sh.Col] -= give
		limit[sh.Col] = widths[sh.Col]
		over -= give
	}
	out := Table{Headers: tb.Headers, Rows: make([][]Cell, len(tb.Rows))}
	for i, r := range tb.Rows {
		row := append([]Cell(nil), r...)
		for col, w := range limit {
			if col < len(row) {
				row[col].Text = elide(row[col].Text, w)
			}
		}
		out.Rows[i] = row
	}
	return out
}

// elide shortens s to w characters, keeping its start and its end (where
// names keep their ordinal).
func elide(s string, w int) string {
	r := []rune(s)
	if len(r) <= w || w < 3 {
		return s
	}
	tail := (w - 1) / 2
	head := w - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

func columnWidths(tb Table) []int {
	cols := len(tb.Headers)
	for _, r := range tb.Rows {
		cols = max(cols, len(r))
	}
	widths := make([]int, cols)
	measure := func(i int, s string) { widths[i] = max(widths[i], lipgloss.Width(s)) }
	for i, h := range tb.Headers {
		measure(i, h)
	}
	for _, r := range tb.Rows {
		for i, c := range r {
			measure(i, c.Text)
		}
	}
	return widths
}

// columnGap separates plain columns, as kubectl's printers do.
const columnGap = "   "

// RenderTable writes t: with colour, a lipgloss table with styled cells;
// without, plain columns separated by spaces that grep and awk handle
// well (no borders, no trailing blanks).
func (t Theme) RenderTable(w io.Writer, tb Table) error {
	tb = fit(tb)
	var out string
	if t.color {
		out = t.lipglossTable(tb)
	} else {
		out = plainTable(tb)
	}
	if out == "" {
		return nil
	}
	_, err := io.WriteString(w, out+"\n")
	return err
}

func plainTable(tb Table) string {
	widths := columnWidths(tb)
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i, c := range cells {
			if i > 0 {
				l.WriteString(columnGap)
			}
			l.WriteString(c)
			if i < len(cells)-1 {
				l.WriteString(strings.Repeat(" ", widths[i]-lipgloss.Width(c)))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteString("\n")
	}
	if len(tb.Headers) > 0 {
		line(tb.Headers)
	}
	for _, r := range tb.Rows {
		texts := make([]string, len(r))
		for i, c := range r {
			texts[i] = c.Text
		}
		line(texts)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (t Theme) lipglossTable(tb Table) string {
	rows := make([][]string, len(tb.Rows))
	for i, r := range tb.Rows {
		rows[i] = make([]string, len(r))
		for k, c := range r {
			rows[i][k] = c.Text
		}
	}
	cell := lipgloss.NewStyle().PaddingRight(len(columnGap))
	return table.New().
		Headers(tb.Headers...).
		Rows(rows...).
		Wrap(false).
		Border(lipgloss.NormalBorder()).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderColumn(false).BorderHeader(true).
		BorderStyle(t.faint).
		StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return cell.Bold(true)
			}
			if row < 0 || row >= len(tb.Rows) || col >= len(tb.Rows[row]) {
				return cell
			}
			return t.toneStyle(tb.Rows[row][col].Tone).PaddingRight(len(columnGap))
		}).
		String()
}

func (t Theme) toneStyle(tone Tone) lipgloss.Style {
	switch tone {
	case ToneGood:
		return t.good
	case ToneWarn:
		return t.warn
	case ToneBad:
		return t.bad
	case ToneFaint:
		return t.faint
	}
	return lipgloss.NewStyle()
}

// Tone styles s with tone.
func (t Theme) Tone(tone Tone, s string) string {
	if tone == ToneNone {
		return s
	}
	return t.render(t.toneStyle(tone), s)
}
