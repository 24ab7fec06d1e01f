package synthesis

import (
	"fmt"
	"strings"

	"github.com/floridify/batchsynth/internal/store"
)

// WordInput is a word with its definitions as stored in Floridify, and the state of its word-level fields.
type WordInput struct {
	WordID   store.ObjectID
	Word     string
	Language string
	Defs     []store.Definition
	State    WordState
}

// PlanOptions steer Plan.
type PlanOptions struct {
	Mode string
	// Model is every request's model, or ModelAuto to route each component by its tier (routing.go).
	Model      string
	Components []string
	Force      bool
	// Nonce separates forced requests from earlier ones (the job id); empty unless Force.
	Nonce string
	// InFlight lists, per definition, components already asked by a request that has not settled:
	// asking again would pay twice.
	InFlight map[store.ObjectID]map[string]bool
}

// Planned is one request to create.
type Planned struct {
	ID string
	// Model is the request's own model: with routing, requests of one word go to different models (and so to
	// different batches: the builder fills each input file with one model's requests).
	Model    string
	Target   Target
	Rendered Rendered
}

// Plan decides the requests for one word: only missing components unless Force, grouped by mode.
//
//   - per-component: one request per (definition, component), and one per word-level component.
//   - packed: one request per definition with all its missing definition-level components, and one word
//     request with the word's missing word-level components.
//   - packed-word: one request per word with all its definitions (senses missing the same components share a
//     request; usually that is all of them) and its word-level components.
//
// With routing (Model ModelAuto), a request only holds components of one model, so packed modes split by tier.
func Plan(w WordInput, o PlanOptions) ([]Planned, error) {
	comps, err := components(o.Components)
	if err != nil {
		return nil, err
	}
	if o.Model == "" {
		return nil, fmt.Errorf("no model")
	}
	lang := w.Language
	if lang == "" {
		lang = "en"
	}
	type defNeed struct {
		ref   DefRef
		comps []*Component
	}
	var needs []defNeed
	for i := range w.Defs {
		d := &w.Defs[i]
		var missing []*Component
		for _, c := range comps {
			if c.Level != DefinitionLevel || o.InFlight[d.ID][c.Name] {
				continue
			}
			if o.Force || c.Missing(d) {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			continue
		}
		needs = append(needs, defNeed{
			ref:   DefRef{ID: d.ID, PartOfSpeech: d.PartOfSpeech, Text: d.Text, Counts: ComputeCounts(lang, len(w.Defs), d.PartOfSpeech)},
			comps: missing,
		})
	}
	var wordComps []*Component
	for _, c := range comps {
		if c.Level != WordLevel || inFlightOnDefs(o.InFlight, w.Defs, c.Name) {
			continue
		}
		if o.Force || c.MissingWord(&w.State) {
			wordComps = append(wordComps, c)
		}
	}
	var gloss *DefRef
	firstPOS := ""
	if len(w.Defs) > 0 {
		d := w.Defs[0]
		gloss = &DefRef{ID: d.ID, PartOfSpeech: d.PartOfSpeech, Text: d.Text}
		firstPOS = d.PartOfSpeech
	}
	wordCounts := ComputeCounts(lang, len(w.Defs), firstPOS)
	// A request for word components alone names all the word's definitions (none is listed in its prompt):
	// the pipeline finds requests in flight through their definitions (an indexed query), so a second job
	// sees this one too.
	allDefs := make([]DefRef, len(w.Defs))
	for i, d := range w.Defs {
		allDefs[i] = DefRef{ID: d.ID, PartOfSpeech: d.PartOfSpeech, Text: d.Text}
	}
	nonce := ""
	if o.Force {
		nonce = o.Nonce
	}
	var out []Planned
	add := func(model, kind string, defs []DefRef, cs []*Component) error {
		t := Target{Kind: kind, WordID: w.WordID, Word: w.Word, Language: lang, Defs: defs, Components: sortComponents(names(cs)),
			WordCounts: wordCounts, Sources: w.State.SourceEtymologies}
		if kind == store.TargetWord && defs == nil {
			t.Defs, t.Gloss = allDefs, gloss
		}
		ids := make([]store.ObjectID, len(defs))
		for i, d := range defs {
			ids[i] = d.ID
		}
		r, err := Render(model, t)
		if err != nil {
			return fmt.Errorf("word %q: %w", w.Word, err)
		}
		out = append(out, Planned{
			ID:       RequestKey(kind, ids, w.WordID, t.Components, model, o.Mode, nonce),
			Model:    model,
			Target:   t,
			Rendered: r,
		})
		return nil
	}
	switch o.Mode {
	case ModePerComponent:
		for _, n := range needs {
			for _, c := range n.comps {
				if err := add(RouteModel(o.Model, c), store.TargetDefinition, []DefRef{n.ref}, []*Component{c}); err != nil {
					return nil, err
				}
			}
		}
		for _, c := range wordComps {
			if err := add(RouteModel(o.Model, c), store.TargetWord, nil, []*Component{c}); err != nil {
				return nil, err
			}
		}
	case ModePacked, "":
		for _, n := range needs {
			for _, g := range byModel(o.Model, n.comps) {
				if err := add(g.model, store.TargetDefinition, []DefRef{n.ref}, g.comps); err != nil {
					return nil, err
				}
			}
		}
		for _, g := range byModel(o.Model, wordComps) {
			if err := add(g.model, store.TargetWord, nil, g.comps); err != nil {
				return nil, err
			}
		}
	case ModePackedWord:
		groups := map[string][]DefRef{}
		var order []string
		compsOf := map[string][]*Component{}
		for _, n := range needs {
			k := strings.Join(names(n.comps), ",")
			if _, ok := groups[k]; !ok {
				order = append(order, k)
				compsOf[k] = n.comps
			}
			groups[k] = append(groups[k], n.ref)
		}
		// The word's own components ride with the first group of the same model.
		pending := byModel(o.Model, wordComps)
		for _, k := range order {
			for _, g := range byModel(o.Model, compsOf[k]) {
				cs := g.comps
				for i := range pending {
					if pending[i].model == g.model && len(pending[i].comps) > 0 {
						cs = append(append([]*Component{}, cs...), pending[i].comps...)
						pending[i].comps = nil
					}
				}
				if err := add(g.model, store.TargetWord, groups[k], cs); err != nil {
					return nil, err
				}
			}
		}
		for _, g := range pending {
			if len(g.comps) == 0 {
				continue
			}
			if err := add(g.model, store.TargetWord, nil, g.comps); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown mode %q (want %s)", o.Mode, strings.Join(Modes(), ", "))
	}
	return out, nil
}

// inFlightOnDefs reports whether a word request in flight (it names the word's definitions) asks name.
func inFlightOnDefs(inFlight map[store.ObjectID]map[string]bool, defs []store.Definition, name string) bool {
	for _, d := range defs {
		if inFlight[d.ID][name] {
			return true
		}
	}
	return false
}

type modelGroup struct {
	model string
	comps []*Component
}

// byModel partitions comps by the model each is routed to, in catalog order of first appearance.
func byModel(model string, comps []*Component) []modelGroup {
	var out []modelGroup
	for _, c := range comps {
		m := RouteModel(model, c)
		found := false
		for i := range out {
			if out[i].model == m {
				out[i].comps = append(out[i].comps, c)
				found = true
			}
		}
		if !found {
			out = append(out, modelGroup{model: m, comps: []*Component{c}})
		}
	}
	return out
}

func names(comps []*Component) []string {
	out := make([]string, len(comps))
	for i, c := range comps {
		out[i] = c.Name
	}
	return out
}
