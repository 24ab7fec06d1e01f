package web

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/floridify/batchsynth/internal/config"
	"github.com/floridify/batchsynth/internal/pipeline"
)

// BenchmarkReadSubmission measures the handler's own share of intake (decoding and validating 100,000
// words with a definition each), which must stay far below issue 6's 5 s for 100,000 words.
func BenchmarkReadSubmission(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"components": "synonyms", "words": [`)
	for i := range 100_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"word": "w%d", "definitions": [{"part_of_speech": "noun", "text": "a thing used for something in particular, number %d"}]}`, i, i)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	cfg, _ := config.FromEnv(func(string) string { return "" })
	s := &Server{Deps: &pipeline.Deps{Config: cfg}, MaxBodyBytes: MaxBodyBytesDefault, MaxWords: MaxWordsDefault}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/jobs", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		sub, err := s.readSubmission(httptest.NewRecorder(), r)
		if err != nil || len(sub.Words) != 100_000 {
			b.Fatal(err)
		}
	}
}
