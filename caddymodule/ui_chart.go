package caddymodule

import (
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"
)

// throughput counts, per minute over the last hour, the events received
// (stored as new), delivered and failed (attempts that failed), for the
// dashboard's chart. It belongs to the process, as the workers do: a
// reload does not empty the chart. The Prometheus counters hold the same
// facts for the long run.
var throughput = &minuteCounts{}

const chartMinutes = 60

type minuteCount struct {
	Minute                      time.Time
	Received, Delivered, Failed int
}

type minuteCounts struct {
	mu   sync.Mutex
	ring [chartMinutes]minuteCount
}

// bucket returns the count of t's minute, emptied if it held an older
// minute. c.mu is held.
func (c *minuteCounts) bucket(t time.Time) *minuteCount {
	m := t.Truncate(time.Minute)
	b := &c.ring[m.Unix()/60%chartMinutes]
	if !b.Minute.Equal(m) {
		*b = minuteCount{Minute: m}
	}
	return b
}

func (c *minuteCounts) received(t time.Time) {
	c.mu.Lock()
	c.bucket(t).Received++
	c.mu.Unlock()
}

func (c *minuteCounts) delivered(t time.Time) {
	c.mu.Lock()
	c.bucket(t).Delivered++
	c.mu.Unlock()
}

func (c *minuteCounts) failed(t time.Time) {
	c.mu.Lock()
	c.bucket(t).Failed++
	c.mu.Unlock()
}

// lastHour is the counts of the hour up to now, oldest minute first.
func (c *minuteCounts) lastHour(now time.Time) []minuteCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]minuteCount, chartMinutes)
	end := now.Truncate(time.Minute)
	for i := range out {
		m := end.Add(time.Duration(i-chartMinutes+1) * time.Minute)
		b := c.ring[m.Unix()/60%chartMinutes]
		if b.Minute.Equal(m) {
			out[i] = b
		} else {
			out[i] = minuteCount{Minute: m}
		}
	}
	return out
}

// chartSVG draws the counts as three lines, server-side: no script, and
// nothing the Content-Security-Policy has to allow. Colours come from the
// stylesheet's classes.
func chartSVG(counts []minuteCount) template.HTML {
	const w, h, left, right, top, bottom = 720, 180, 40, 10, 10, 24
	top0 := 1
	for _, c := range counts {
		top0 = max(top0, c.Received, c.Delivered, c.Failed)
	}
	x := func(i int) float64 { return left + float64(i)*float64(w-left-right)/float64(len(counts)-1) }
	y := func(n int) float64 { return top + float64(h-top-bottom)*(1-float64(n)/float64(top0)) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">`, w, h)
	b.WriteString(`<title id="chart-title">Events per minute over the last hour: received, delivered, failed attempts</title>`)
	for _, n := range []int{0, (top0 + 1) / 2, top0} {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, left, w-right, y(n), y(n))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%d</text>`, left-6, y(n)+4, n)
	}
	for i, label := range map[int]string{0: "-60m", 30: "-30m", len(counts) - 1: "now"} {
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(i), h-6, label)
	}
	series := []struct {
		class string
		value func(minuteCount) int
	}{
		{"received", func(c minuteCount) int { return c.Received }},
		{"delivered", func(c minuteCount) int { return c.Delivered }},
		{"failed", func(c minuteCount) int { return c.Failed }},
	}
	for _, s := range series {
		fmt.Fprintf(&b, `<polyline class="line %s" points="`, s.class)
		for i, c := range counts {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(s.value(c)))
		}
		b.WriteString(`"/>`)
	}
	// One hover target a minute, with its numbers.
	step := float64(w-left-right) / float64(len(counts)-1)
	for i, c := range counts {
		fmt.Fprintf(&b, `<rect class="hover" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s: received %d, delivered %d, failed %d</title></rect>`,
			x(i)-step/2, top, step, h-top-bottom, c.Minute.UTC().Format("15:04Z"), c.Received, c.Delivered, c.Failed)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
