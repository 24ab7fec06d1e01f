package synthesis

import "slices"

// ModelAuto asks for model routing: each component goes to its tier's model (TierModels). Any other model
// name overrides the table and sends every request to that model.
const ModelAuto = "auto"

// TierModels is the routing table, Floridify's own (ai/model_selection.py): its LOW tier (classifications)
// on gpt-5-nano, its MEDIUM tier (generation) on gpt-5-mini.
var TierModels = map[Tier]string{
	TierClassify: "gpt-5-nano",
	TierGenerate: "gpt-5-mini",
}

// RouteModel returns the model a request for c goes to when the job's model is model.
func RouteModel(model string, c *Component) string {
	if model != ModelAuto {
		return model
	}
	return TierModels[c.Tier]
}

// Models lists the models a job's requests go to: model itself, or with ModelAuto the tier models of comps.
// Queries for a job's requests (in flight, to build) filter on these, never on "auto".
func Models(model string, comps []string) []string {
	if model != ModelAuto {
		return []string{model}
	}
	var out []string
	for _, n := range sortComponents(comps) {
		if c, ok := byName[n]; ok && !slices.Contains(out, TierModels[c.Tier]) {
			out = append(out, TierModels[c.Tier])
		}
	}
	return out
}
