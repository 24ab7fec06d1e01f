package web

import (
	"net/url"
	"strings"
	"testing"
)

func TestIntakeDecodeSkipsBOM(t *testing.T) {
	const bom = "\ufeff"
	s := &Server{MaxWords: 100, MaxBodyBytes: 1 << 20}
	bodies := []struct{ ct, body string }{
		{"application/json", `{"words":[{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]},"run"]}`},
		{"", `{"words":[{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]},"run"]}`},
		{"application/x-ndjson", `{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]}` + "\n" + `{"word":"run"}` + "\n"},
		{"text/plain", "bank\nrun\n"},
	}
	for _, b := range bodies {
		plain, _, err := s.decodeSubmission(strings.NewReader(b.body), b.ct, url.Values{})
		if err != nil {
			t.Fatalf("%s without a BOM: %v", b.ct, err)
		}
		sub, _, err := s.decodeSubmission(strings.NewReader(bom+b.body), b.ct, url.Values{})
		if err != nil {
			t.Fatalf("%s with a BOM: %v", b.ct, err)
		}
		if len(sub.Errors) != 0 || len(sub.Words) != len(plain.Words) || len(sub.Words) != 2 {
			t.Fatalf("%s with a BOM: words %+v errors %+v; without: %+v", b.ct, sub.Words, sub.Errors, plain.Words)
		}
		if sub.Words[0].Word != "bank" || sub.Words[1].Word != "run" {
			t.Errorf("%s with a BOM: words %+v", b.ct, sub.Words)
		}
		if b.ct != "text/plain" && (len(sub.Words[0].Definitions) != 1 || sub.Words[0].Definitions[0] != plain.Words[0].Definitions[0]) {
			t.Errorf("%s with a BOM: definitions %+v, without %+v", b.ct, sub.Words[0].Definitions, plain.Words[0].Definitions)
		}
	}
}
