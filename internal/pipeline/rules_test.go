package pipeline

import (
	"errors"
	"testing"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// TestCheckSubmission: the submit rule fills the configured defaults and refuses, naming the field, what
// the pipeline could not run, whichever door the submission came through.
func TestCheckSubmission(t *testing.T) {
	t.Parallel()
	d := &Deps{Config: config.Config{Model: "gpt-4o-mini", Mode: synthesis.ModePacked}}
	ok := func() Submission {
		return Submission{Words: []store.InputWord{{Word: "apple"}}, Components: []string{"synonyms"}}
	}
	s := ok()
	if err := d.CheckSubmission(&s); err != nil {
		t.Fatal(err)
	}
	if s.Model != "gpt-4o-mini" || s.Mode != synthesis.ModePacked || s.Priority != PriorityNormal {
		t.Errorf("defaults: model %q, mode %q, priority %q", s.Model, s.Mode, s.Priority)
	}
	for _, m := range []string{"gpt-5-mini", "gpt-4o-mini-2024-07-18", synthesis.ModelAuto} {
		s := ok()
		s.Model = m
		if err := d.CheckSubmission(&s); err != nil {
			t.Errorf("model %q: %v", m, err)
		}
	}
	for field, change := range map[string]func(*Submission){
		"words":      func(s *Submission) { s.Words = nil },
		"components": func(s *Submission) { s.Components = []string{"colour"} },
		"model":      func(s *Submission) { s.Model = "gpt-9" },
		"mode":       func(s *Submission) { s.Mode = "loose" },
		"priority":   func(s *Submission) { s.Priority = "asap" },
	} {
		s := ok()
		change(&s)
		err := d.CheckSubmission(&s)
		var ie *InvalidInputError
		if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("bad %s: %v, want ErrInvalidInput naming %s", field, err, field)
		}
	}
}
