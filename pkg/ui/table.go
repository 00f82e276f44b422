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
}

// columnGap separates plain columns, as kubectl's printers do.
const columnGap = "   "

// RenderTable writes t: with colour, a lipgloss table with styled cells;
// without, plain columns separated by spaces that grep and awk handle
// well (no borders, no trailing blanks).
func (t Theme) RenderTable(w io.Writer, tb Table) error {
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
