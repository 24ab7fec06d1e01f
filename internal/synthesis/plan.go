package synthesis

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
)

// WordInput is a word with its definitions as stored in Floridify.
type WordInput struct {
	WordID   bson.ObjectID
	Word     string
	Language string
	Defs     []store.Definition
}

// PlanOptions steer Plan.
type PlanOptions struct {
	Mode       string
	Model      string
	Components []string
	Force      bool
	// Nonce separates forced requests from earlier ones (the job id); empty unless Force.
	Nonce string
	// InFlight lists, per definition, components already asked by a request that has not settled:
	// asking again would pay twice.
	InFlight map[bson.ObjectID]map[string]bool
}

// Planned is one request to create.
type Planned struct {
	ID       string
	Target   Target
	Rendered Rendered
}

// Plan decides the requests for one word: only missing components unless Force, grouped by mode.
func Plan(w WordInput, o PlanOptions) ([]Planned, error) {
	comps, err := components(o.Components)
	if err != nil {
		return nil, err
	}
	lang := w.Language
	if lang == "" {
		lang = "en"
	}
	type defNeed struct {
		ref   DefRef
		comps []string
	}
	var needs []defNeed
	for i := range w.Defs {
		d := &w.Defs[i]
		var missing []string
		for _, c := range comps {
			if c.Level != DefinitionLevel {
				continue
			}
			if o.InFlight[d.ID][c.Name] {
				continue
			}
			if o.Force || c.Missing(d) {
				missing = append(missing, c.Name)
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
	nonce := ""
	if o.Force {
		nonce = o.Nonce
	}
	var out []Planned
	add := func(t Target) error {
		t.WordID, t.Word, t.Language = w.WordID, w.Word, lang
		ids := make([]bson.ObjectID, len(t.Defs))
		for i, d := range t.Defs {
			ids[i] = d.ID
		}
		r, err := Render(o.Model, t)
		if err != nil {
			return fmt.Errorf("word %q: %w", w.Word, err)
		}
		out = append(out, Planned{
			ID:       RequestKey(t.Kind, ids, w.WordID, t.Components, o.Model, o.Mode, nonce),
			Target:   t,
			Rendered: r,
		})
		return nil
	}
	switch o.Mode {
	case ModePerComponent:
		for _, n := range needs {
			for _, c := range n.comps {
				if err := add(Target{Kind: store.TargetDefinition, Defs: []DefRef{n.ref}, Components: []string{c}}); err != nil {
					return nil, err
				}
			}
		}
	case ModePacked, "":
		for _, n := range needs {
			if err := add(Target{Kind: store.TargetDefinition, Defs: []DefRef{n.ref}, Components: n.comps}); err != nil {
				return nil, err
			}
		}
	case ModePackedWord:
		// Senses that miss the same components share one request; usually that is all of them.
		groups := map[string][]DefRef{}
		var order []string
		compsOf := map[string][]string{}
		for _, n := range needs {
			k := strings.Join(n.comps, ",")
			if _, ok := groups[k]; !ok {
				order = append(order, k)
				compsOf[k] = n.comps
			}
			groups[k] = append(groups[k], n.ref)
		}
		for _, k := range order {
			if err := add(Target{Kind: store.TargetWord, Defs: groups[k], Components: compsOf[k]}); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown mode %q (want %s)", o.Mode, strings.Join(Modes(), ", "))
	}
	return out, nil
}
