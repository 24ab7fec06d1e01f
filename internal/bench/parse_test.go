package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/openaibatch"
)

// TestParseLineOnePassMatches checks the proposed parser against openaibatch.ParseLine on every line the
// emulator writes, faults included (refusals, cut-off answers, invalid content, per-line 400s), and on
// malformed lines: the Result and the error must be the same.
func TestParseLineOnePassMatches(t *testing.T) {
	t.Parallel()
	c := DefaultCorpus(t)
	dir := t.TempDir()
	in, out, errs := filepath.Join(dir, "in"), filepath.Join(dir, "out"), filepath.Join(dir, "err")
	WriteInput(t, in, c.Lines(600))
	EmulatorFiles(t, emulator.Config{Seed: 3, Faults: emulator.Faults{RateRefusal: 0.1, RateLength: 0.1,
		RateInvalidSchema: 0.1, RateLine4xx: 0.1}}, in, out, errs)
	var lines [][]byte
	for _, p := range []string{out, errs} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, append([]byte(nil), sc.Bytes()...))
		}
		f.Close()
	}
	if len(lines) != 600 {
		t.Fatalf("%d result lines, want 600", len(lines))
	}
	lines = append(lines,
		[]byte(`not json`), []byte(`{}`), []byte(`{"custom_id":"a-1"}`), []byte(`{"custom_id":"a-1","error":{"code":"x","message":"y"}}`),
		[]byte(`{"id":7,"custom_id":"a-1","response":{"status_code":200,"body":{}}}`),
		[]byte(`{"custom_id":"a-1","response":{"status_code":200,"body":"oops"}}`),
		[]byte(`{"custom_id":"a-1","response":{"status_code":500,"body":{"error":{"type":"server_error","message":"m"}}}}`),
		[]byte(`{"custom_id":"a-1","response":{"status_code":200,"body":{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}}}`),
		[]byte(`{"custom_id":"a-1","response":{"status_code":200,"body":null}}`),
	)
	kinds := map[string]int{}
	for i, l := range lines {
		want, wantErr := openaibatch.ParseLine(l)
		got, gotErr := ParseLineOnePass(l)
		if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("line %d %.200s:\n got %+v, %v\nwant %+v, %v", i, l, got, gotErr, want, wantErr)
		}
		switch {
		case wantErr != nil:
			kinds["malformed"]++
		case want.OK:
			kinds["ok"]++
		default:
			kinds["failed"]++
		}
	}
	if kinds["ok"] == 0 || kinds["failed"] < 100 || kinds["malformed"] == 0 {
		t.Fatalf("the lines do not cover the cases: %v", kinds)
	}
	t.Logf("lines compared: %v", kinds)
}
