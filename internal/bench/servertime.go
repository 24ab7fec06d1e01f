package bench

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/floridify/batchsynth/internal/devstack"
)

// ServerTime tells where the test server's time went between two testenv.MongoCommandStats snapshots: the
// top kinds of command by total time, with counts and write statements. Empty on MONGODB_URI.
func ServerTime(before, after []devstack.CommandStat, top int) string {
	prev := map[string]devstack.CommandStat{}
	for _, c := range before {
		prev[c.Command] = c
	}
	var diff []devstack.CommandStat
	var total time.Duration
	for _, c := range after {
		p := prev[c.Command]
		d := devstack.CommandStat{Command: c.Command, Count: c.Count - p.Count, Total: c.Total - p.Total, Statements: c.Statements - p.Statements}
		if d.Count > 0 {
			diff = append(diff, d)
			total += d.Total
		}
	}
	if len(diff) == 0 {
		return ""
	}
	slices.SortFunc(diff, func(a, b devstack.CommandStat) int { return cmp.Compare(b.Total, a.Total) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "  server time %s in %d kinds of command; the top %d:\n", total.Round(time.Millisecond), len(diff), min(top, len(diff)))
	for _, c := range diff[:min(top, len(diff))] {
		fmt.Fprintf(&sb, "    %-32s %6d calls %9s (%4.1f%%) %7.2f ms/call", c.Command, c.Count, c.Total.Round(time.Millisecond),
			100*c.Total.Seconds()/total.Seconds(), c.Total.Seconds()*1000/float64(c.Count))
		if c.Statements > 0 {
			fmt.Fprintf(&sb, " %6d statements %6.2f ms/statement", c.Statements, c.Total.Seconds()*1000/float64(c.Statements))
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
