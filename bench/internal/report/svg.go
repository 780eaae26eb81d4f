package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart geometry, in pixels.
const (
	chartWidth  = 1100
	labelWidth  = 360
	plotLeft    = labelWidth + 20
	plotWidth   = 640
	barHeight   = 9
	rowGap      = 6
	headerH     = 70
	chartMaxLog = 5 // the axis spans 1/32× to 32×
)

var chartColors = []string{"#2f6fb3", "#e07b28", "#3a9e5a", "#8e5bb5"}

// SVG draws kinelite's advantage over each other server on every metric
// that has a direction: bars to the right of 1× mean kinelite is better,
// to the left worse, on a log scale clipped at 32×.
func (r *Run) SVG() string {
	others := r.others()
	var rows []Row
	for _, row := range r.Rows() {
		if row.Metric.Better == 0 || row.Metric.HideIfZero {
			continue // counters (errors, misses) are in the table
		}
		for _, o := range others {
			if !math.IsNaN(row.Advantage(o)) {
				rows = append(rows, row)
				break
			}
		}
	}
	rowH := len(others)*barHeight + rowGap
	height := headerH + len(rows)*rowH + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n",
		chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">kinelite's advantage per metric (medians over %d rounds; &gt;1× = kinelite better, log scale)</text>`+"\n", r.Rounds)
	for i, o := range others {
		x := 10 + i*160
		fmt.Fprintf(&b, `<rect x="%d" y="32" width="12" height="10" fill="%s"/><text x="%d" y="41">vs %s</text>`+"\n",
			x, chartColors[i%len(chartColors)], x+16, html.EscapeString(o))
	}
	xOf := func(adv float64) float64 {
		l := math.Log2(adv)
		l = math.Max(-chartMaxLog, math.Min(chartMaxLog, l))
		return plotLeft + plotWidth/2 + l/chartMaxLog*plotWidth/2
	}
	// Axis ticks.
	top, bottom := headerH-8, headerH+len(rows)*rowH
	for e := -chartMaxLog; e <= chartMaxLog; e++ {
		x := xOf(math.Pow(2, float64(e)))
		stroke := "#ddd"
		if e == 0 {
			stroke = "#333"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, top, x, bottom, stroke)
		label := fmt.Sprintf("%g×", math.Pow(2, float64(e)))
		if e < 0 {
			label = fmt.Sprintf("1/%g×", math.Pow(2, float64(-e)))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x, top-4, label)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", x, bottom+14, label)
	}
	prev := ""
	for i, row := range rows {
		y := headerH + i*rowH
		if row.Workload != prev && i > 0 {
			fmt.Fprintf(&b, `<line x1="10" y1="%d" x2="%d" y2="%d" stroke="#bbb"/>`+"\n", y-rowGap/2, chartWidth-10, y-rowGap/2)
		}
		label := row.Metric.Name
		if row.Workload != prev {
			label = row.Workload + " · " + label
		}
		prev = row.Workload
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelWidth, y+len(others)*barHeight/2+4,
			html.EscapeString(label))
		for j, o := range others {
			adv := row.Advantage(o)
			if math.IsNaN(adv) {
				continue
			}
			x0, x1 := xOf(1), xOf(adv)
			if x1 < x0 {
				x0, x1 = x1, x0
			}
			by := y + j*barHeight
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s vs %s: %.2f×</title></rect>`+"\n",
				x0, by, math.Max(1, x1-x0), barHeight-1, chartColors[j%len(chartColors)],
				html.EscapeString(row.Workload+" "+row.Metric.Name), html.EscapeString(o), adv)
			tx, anchor := xOf(adv)+4, "start"
			if adv < 1 {
				tx, anchor = xOf(adv)-4, "end"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s" font-size="9" fill="#333">%s</text>`+"\n",
				tx, by+barHeight-1, anchor, fmtChart(adv))
		}
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">Counters (errors, missed events) and failed runs are not drawn; see the table.</text>`+"\n", bottom+32)
	b.WriteString("</svg>\n")
	return b.String()
}

func fmtChart(a float64) string {
	if math.IsInf(a, 1) {
		return "∞"
	}
	if a >= 10 {
		return fmt.Sprintf("%.0f×", a)
	}
	return fmt.Sprintf("%.2f×", a)
}
