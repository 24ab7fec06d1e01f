package pipeline

import (
	"context"

	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// LoadWordStates reads what word-level components need to know of the words (their synthesis dictionary
// entries and whether the documents those link exist), with one query per collection for all of them.
// It reads nothing when comps has no word-level component; a word with nothing stored gets the zero state.
func LoadWordStates(ctx context.Context, s *store.Store, wordIDs []store.ObjectID, comps []string) (map[store.ObjectID]synthesis.WordState, error) {
	out := map[store.ObjectID]synthesis.WordState{}
	want := map[string]bool{}
	for _, n := range comps {
		if c, ok := synthesis.Lookup(n); ok && c.Level == synthesis.WordLevel {
			want[n] = true
		}
	}
	if len(want) == 0 || len(wordIDs) == 0 {
		return out, nil
	}
	states, err := s.WordEntryStates(ctx, wordIDs, store.WordEntryReads{
		Pronunciation: want["pronunciation"], Facts: want["facts"], SourceEtymologies: want["etymology"]})
	if err != nil {
		return nil, err
	}
	for id, st := range states {
		out[id] = synthesis.WordState{Entry: st.Entry, HasPronunciation: st.HasPronunciation, Facts: st.Facts,
			SourceEtymologies: st.SourceEtymologies}
	}
	return out, nil
}

// writeFloridify sends the accumulated writes to Floridify's collections.
func (d *Deps) writeFloridify(ctx context.Context, w *synthesis.Writes) error {
	return d.Store.WriteFloridify(ctx, w.Floridify())
}
