package input

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	p, err := Parse(strings.NewReader("# my words\n\nbank\n  run  \nbank\nice_cream\nNew York\nrock 'n' roll\nсобака\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range p.Words {
		got = append(got, w.Word)
	}
	if p.Format != FormatText || strings.Join(got, "|") != "bank|run|ice_cream|New York|rock 'n' roll|собака" {
		t.Fatalf("format %s words %q", p.Format, got)
	}
	if len(p.Errors) != 1 || p.Errors[0].Line != 5 || !strings.Contains(p.Errors[0].Message, "duplicate of line 3") {
		t.Fatalf("want the duplicate on line 5 reported, got %+v", p.Errors)
	}
}

func TestParseJSONLNamesLineAndField(t *testing.T) {
	in := strings.Join([]string{
		`{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]}`,
		`{"word":"","definitions":[]}`,
		`{"word":"run","definitions":[{"part_of_speech":"verb"}]}`,
		`{"word":"fair","definitions":[{"part_of_speech":"adjective","text":"just"}],"extra":1}`,
		`{"word": "light", "definitions": [{"part_of_speech": "noun", "text": "` + strings.Repeat("x", MaxDefinitionLen+1) + `"}]}`,
		`not json`,
		"{\"word\":\"a\xffb\"}",
		`{"word":"set","language":"xx"}`,
	}, "\n")
	p, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != FormatJSONL || len(p.Words) != 1 || p.Words[0].Word != "bank" || p.Words[0].Definitions[0].PartOfSpeech != "noun" {
		t.Fatalf("format %s words %+v", p.Format, p.Words)
	}
	want := map[int]string{2: "word", 3: "definitions[0].text", 4: "", 5: "definitions[0].text", 6: "", 7: "", 8: "language"}
	if len(p.Errors) != len(want) {
		t.Fatalf("want %d errors, got %+v", len(want), p.Errors)
	}
	for _, e := range p.Errors {
		field, ok := want[e.Line]
		if !ok || e.Field != field || e.Message == "" {
			t.Fatalf("unexpected error %+v", e)
		}
	}
}

func TestParseRejectsGarbageButKeepsGoing(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("bank\n")
	b.Write(bytes.Repeat([]byte{'y'}, 10<<20)) // a 10 MB line
	b.WriteString("\n\x00\x01\x02\nrun\n")
	p, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Words) != 2 || p.Words[1].Word != "run" || p.Words[1].Line != 4 {
		t.Fatalf("words %+v", p.Words)
	}
	if len(p.Errors) != 2 || p.Errors[0].Line != 2 || p.Errors[1].Line != 3 {
		t.Fatalf("errors %+v", p.Errors)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n# only comments\n"} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("%q: want ErrEmpty, got %v", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("bank\nrun\n"))
	f.Add([]byte(`{"word":"bank","definitions":[{"part_of_speech":"noun","text":"x"}]}`))
	f.Add([]byte{0xff, 0xfe, '\n', '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(bytes.NewReader(data))
		if err != nil && !errors.Is(err, ErrEmpty) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if p == nil {
			t.Fatal("nil result")
		}
		for _, w := range p.Words {
			if _, err := ValidateWord(w.Word); err != nil {
				t.Fatalf("accepted an invalid word %q: %v", w.Word, err)
			}
		}
	})
}

func TestParseSkipsBOM(t *testing.T) {
	const bom = "\ufeff"
	jsonl := `{"word":"bank","definitions":[{"part_of_speech":"noun","text":"sloping land"}]}` + "\n" +
		`{"word":"run","definitions":[{"part_of_speech":"verb","text":"move fast"}]}` + "\n"
	for _, in := range []string{jsonl, "bank\nrun\n"} {
		plain, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		withBOM, err := Parse(strings.NewReader(bom + in))
		if err != nil {
			t.Fatal(err)
		}
		if withBOM.Format != plain.Format || len(withBOM.Errors) != 0 || len(withBOM.Words) != len(plain.Words) {
			t.Fatalf("%q with a BOM: format %s words %+v errors %+v; without: format %s words %+v",
				in, withBOM.Format, withBOM.Words, withBOM.Errors, plain.Format, plain.Words)
		}
		for i, w := range withBOM.Words {
			p := plain.Words[i]
			if strings.Contains(w.Word, bom) || w.Word != p.Word || len(w.Definitions) != len(p.Definitions) {
				t.Fatalf("word %d with a BOM %+v, without %+v", i, w, p)
			}
			for j, d := range w.Definitions {
				if d != p.Definitions[j] {
					t.Fatalf("word %q definition %d with a BOM %+v, without %+v", w.Word, j, d, p.Definitions[j])
				}
			}
		}
	}
	p, err := Parse(strings.NewReader(bom + jsonl))
	if err != nil || p.Format != FormatJSONL || len(p.Words[0].Definitions) != 1 {
		t.Fatalf("BOM-prefixed JSONL: %+v, %v", p, err)
	}
	p, err = Parse(strings.NewReader(bom + "bank\n"))
	if err != nil || p.Words[0].Word != "bank" {
		t.Fatalf("BOM-prefixed text: %+v, %v", p, err)
	}
	// Only one BOM is the file's; a second one is content, and an invalid word.
	p, _ = Parse(strings.NewReader(bom + bom + "bank\n"))
	if len(p.Words) == 1 && p.Words[0].Word == "bank" {
		t.Fatalf("two BOMs: both dropped: %+v", p.Words)
	}
}
