// Package pricing holds the price table (USD per 1M tokens) and turns usage into dollars at immediate and
// batch rates. Batch is half of immediate; a batch cached-input rate exists only for GPT-5-family models.
package pricing

import (
	"strings"

	"github.com/floridify/batchsynth/internal/store"
)

// Price is one model's rates in USD per 1M tokens. BatchCached is 0 where the Batch API gives no cache discount.
type Price struct {
	Input, Cached, Output                float64
	BatchInput, BatchCached, BatchOutput float64
}

// Table is OpenAI's published prices (its pricing page, https://platform.openai.com/docs/pricing, standard and
// Batch API columns).
var Table = map[string]Price{
	"gpt-4o-mini":  {0.15, 0.075, 0.60, 0.075, 0, 0.30},
	"gpt-4.1-mini": {0.40, 0.10, 1.60, 0.20, 0, 0.80},
	"gpt-4.1-nano": {0.10, 0.025, 0.40, 0.05, 0, 0.20},
	"gpt-5-mini":   {0.25, 0.025, 2.00, 0.125, 0.0125, 1.00},
	"gpt-5-nano":   {0.05, 0.005, 0.40, 0.025, 0.0025, 0.20},
	"gpt-5.4-mini": {0.75, 0.075, 4.50, 0.375, 0.0375, 2.25},
	"gpt-5.4-nano": {0.20, 0.02, 1.25, 0.10, 0.01, 0.625},
}

// Lookup finds a model's price, also for dated snapshots such as gpt-4o-mini-2024-07-18.
func Lookup(model string) (Price, bool) {
	if p, ok := Table[model]; ok {
		return p, true
	}
	best := ""
	for name := range Table {
		if strings.HasPrefix(model, name+"-") && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return Price{}, false
	}
	return Table[best], true
}

// Batch is the cost of u at batch rates.
func Batch(model string, u store.Usage) float64 {
	p, ok := Lookup(model)
	if !ok {
		return 0
	}
	cached := float64(u.CachedTokens)
	uncached := float64(u.InputTokens) - cached
	cachedRate := p.BatchCached
	if cachedRate == 0 {
		cachedRate = p.BatchInput
	}
	return (uncached*p.BatchInput + cached*cachedRate + float64(u.OutputTokens)*p.BatchOutput) / 1e6
}

// Immediate is the cost of u at immediate (synchronous) rates.
func Immediate(model string, u store.Usage) float64 {
	p, ok := Lookup(model)
	if !ok {
		return 0
	}
	cached := float64(u.CachedTokens)
	uncached := float64(u.InputTokens) - cached
	return (uncached*p.Input + cached*p.Cached + float64(u.OutputTokens)*p.Output) / 1e6
}
