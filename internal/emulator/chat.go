package emulator

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
)

// handleChatCompletion answers POST /v1/chat/completions synchronously with the
// same synthetic content a batch line gets. Per-line faults apply too: an
// injected 4xx becomes an HTTP 400; refusal, length and invalid-schema answers
// are 200s.
func (s *Server) handleChatCompletion(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		writeInvalid(w, "Could not read the request body: "+err.Error(), "", "")
		return
	}
	req := parseChatRequest(body)
	if req.bad != nil {
		writeJSON(w, http.StatusBadRequest, errorEnvelope{Error: *req.bad})
		return
	}
	if req.stream {
		writeInvalid(w, "The batchsynth emulator does not support stream=true.", "stream", "unsupported_value")
		return
	}

	s.mu.Lock()
	f := s.faults
	u := s.rng.Float64()
	ids := rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
	now := s.cfg.Now()
	s.mu.Unlock()

	outcome := chooseOutcome(&req, f, u, false)
	// Deterministic content: Seed plus the messages stand in for a custom_id.
	res := synthesize(&req, outcome, seeded(s.cfg.Seed, "content", string(req.messages)), ids, now.Unix())

	s.mu.Lock()
	switch outcome {
	case OutcomeHTTP4xx:
		s.stats.Faults[FaultLine4xx]++
	case OutcomeRefusal:
		s.stats.Faults[FaultRefusal]++
	case OutcomeLength:
		s.stats.Faults[FaultLength]++
	case OutcomeInvalidSchema:
		s.stats.Faults[FaultInvalidSchema]++
	}
	if res.status == http.StatusOK {
		s.stats.ChatCompletions++
	}
	s.mu.Unlock()

	s.log.Debug("chat completion", slog.String("model", req.model), slog.String("outcome", string(outcome)))
	writeJSON(w, res.status, res.body)
}
