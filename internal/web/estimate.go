package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/floridify/batchsynth/internal/estimate"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
)

// estimateBody is the answer of POST /v1/estimate: internal/estimate's report (the planner and renderer a
// job uses, tokens counted with tiktoken over the real bodies, against the fields stored in Floridify), with
// the path the submission would take and the words it would reject.
type estimateBody struct {
	*estimate.Report
	Path        string             `json:"path"`
	InputErrors []store.InputError `json:"input_errors"`
}

func (s *Server) estimate(w http.ResponseWriter, r *http.Request) {
	allModes := false
	if v := r.URL.Query().Get("all_modes"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_field", "all_modes", "want true or false")
			return
		}
		allModes = b
		q := r.URL.Query()
		q.Del("all_modes")
		r.URL.RawQuery = q.Encode()
	}
	sub, err := s.readSubmission(w, r)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	if len(sub.Words) > MaxEstimateWords {
		writeError(w, http.StatusBadRequest, "invalid_field", "words",
			fmt.Sprintf("%d words: an estimate renders every request, so at most %d; estimate a sample and scale", len(sub.Words), MaxEstimateWords))
		return
	}
	modes := []string{sub.Mode}
	if allModes {
		modes = synthesis.Modes()
	}
	rep, err := estimate.Run(r.Context(), sub.Words, estimate.Options{Components: sub.Components, Modes: modes, Model: sub.Model},
		estimate.Database{Store: s.Deps.Store})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, estimateBody{Report: rep, Path: s.pathOf(sub.Priority, len(sub.Words)), InputErrors: sub.Errors})
}
