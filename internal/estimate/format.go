package estimate

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/floridify/batchsynth/internal/pricing"
)

// WriteText prints the report: one table per mode (each component and the total), then the modes side by side.
func (r *Report) WriteText(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d words, %d definitions (%s)\n", r.Words, r.Definitions, sourceText(r.Source))
	fmt.Fprintf(&b, "model %s; components %s\n", r.Model, strings.Join(r.Components, ", "))
	for i, s := range r.Skipped {
		if i == 10 {
			fmt.Fprintf(&b, "skipped: ... and %d more\n", len(r.Skipped)-10)
			break
		}
		fmt.Fprintf(&b, "skipped: %s\n", s)
	}
	models := map[string]bool{}
	for _, m := range r.Modes {
		for _, x := range m.Models {
			models[x] = true
		}
	}
	for _, m := range slices.Sorted(maps.Keys(models)) {
		p, ok := pricing.Lookup(m)
		if !ok {
			fmt.Fprintf(&b, "no price for %s: its dollars count as 0\n", m)
			continue
		}
		cached := "none"
		if p.BatchCached > 0 {
			cached = fmt.Sprintf("%g", p.BatchCached)
		}
		fmt.Fprintf(&b, "prices of %s, USD per 1M tokens: immediate in %g / out %g; batch in %g / out %g / cached in %s\n",
			m, p.Input, p.Output, p.BatchInput, p.BatchOutput, cached)
	}
	fmt.Fprintf(&b, "cache: %s\n", r.CacheBasis)
	if r.Words == 0 {
		b.WriteString("nothing to estimate\n")
	}
	if _, err := io.WriteString(out, b.String()); err != nil || r.Words == 0 {
		return err
	}
	for _, m := range r.Modes {
		fmt.Fprintf(out, "\n%s (%s)\n", m.Mode, strings.Join(m.Models, ", "))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "component\trequests\tinput tok\toutput tok\timmediate $\tbatch $\tbatch+cached $\tcache hits\tcache saves $\tbatch $/10k words\t")
		for _, l := range append(append([]Line{}, m.Components...), m.Total) {
			name := l.Component
			if name == "" {
				name = "total"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t%.4f\t%s\t%d\t%.4f\t%.2f\t\n", name, l.Requests, l.InputTokens, l.OutputTokens,
				l.ImmediateUSD, l.BatchUSD, cachedText(m.CachedPrice, l.BatchCachedUSD), l.CacheHits, l.CacheSavedUSD, l.BatchUSDPer10k)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Modes) > 1 {
		fmt.Fprintf(out, "\nmodes side by side\n")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\trequests\tinput tok\toutput tok\timmediate $\tbatch $\tbatch+cached $\tcache saves $\tbatch $/10k words\tvs per-component\t")
		var base float64
		for _, m := range r.Modes {
			if m.Mode == "per-component" {
				base = m.Total.BatchUSD
			}
		}
		for _, m := range r.Modes {
			l := m.Total
			ratio := "-"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f", l.BatchUSD/base)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t%.4f\t%s\t%.4f\t%.2f\t%s\t\n", m.Mode, l.Requests, l.InputTokens, l.OutputTokens,
				l.ImmediateUSD, l.BatchUSD, cachedText(m.CachedPrice, l.BatchCachedUSD), l.CacheSavedUSD, l.BatchUSDPer10k, ratio)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func sourceText(s string) string {
	if s == "offline" {
		return "offline: every field of every definition counts as missing"
	}
	return "planned against Floridify's database: only missing fields count"
}

func cachedText(applies bool, usd float64) string {
	if !applies {
		return "-"
	}
	return fmt.Sprintf("%.4f", usd)
}
