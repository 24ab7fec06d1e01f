package wordnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSONL writes entries one JSON object a line, the project's JSONL
// input format. HTML escaping is off so glosses keep their "&" and "<"
// readable in the file.
func WriteJSONL(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("error writing entry %q: %w", e.Word, err)
		}
	}
	return bw.Flush()
}

// WriteWordList writes entries' words one a line, after header (each of its
// lines prefixed "# ") and a blank line: the plain-text form for words
// already in Floridify, which need no definitions.
func WriteWordList(w io.Writer, header string, entries []Entry) error {
	bw := bufio.NewWriter(w)
	if header != "" {
		for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
			bw.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		bw.WriteString("\n")
	}
	for _, e := range entries {
		bw.WriteString(e.Word + "\n")
	}
	return bw.Flush()
}
