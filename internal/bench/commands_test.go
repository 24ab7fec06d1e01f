package bench

import "testing"

// TestRebuild checks the reconstruction of write calls and of the MongoDB count from a command stream.
func TestRebuild(t *testing.T) {
	cmds := []Command{
		{Name: "find", Collection: "r"},                                 // a read and
		{Name: "getMore", Collection: "r", ReplyBytes: 9 << 20},         // three getMores of 9 MiB:
		{Name: "getMore", Collection: "r", ReplyBytes: 9 << 20},         // 1 + 2 getMores of 16 MiB
		{Name: "getMore", Collection: "r", ReplyBytes: 9 << 20},         // on MongoDB
		{Name: "update", Collection: "r", Statements: 3},                // bulk call of 7 statements at 3:
		{Name: "update", Collection: "b", Statements: 1},                // (another collection in between)
		{Name: "update", Collection: "r", Statements: 3},                //
		{Name: "update", Collection: "r", Statements: 1},                // ... 3+3+1
		{Name: "update", Collection: "r", Statements: 2},                // a new call of 2
		{Name: "find", Collection: "r", IDProjection: true},             // sliced UpdateMany:
		{Name: "getMore", Collection: "r"},                              //
		{Name: "update", Collection: "r", Statements: 1, Sliced: true},  //
		{Name: "update", Collection: "r", Statements: 1, Sliced: true},  // one update on MongoDB
		{Name: "find", Collection: "p", IDProjection: true},             // a plain find of ids: 1
		{Name: "insert", Collection: "e", Statements: 3},                // 3+3 = one call of 6
		{Name: "insert", Collection: "e", Statements: 3},                //
		{Name: "update", Collection: "b", Statements: 1, Renewal: true}, // a lease renewal: left out
	}
	tl := NewTally(cmds, 3)
	if tl.Total != len(cmds) || tl.Renewals != 1 {
		t.Fatalf("total %d, renewals %d", tl.Total, tl.Renewals)
	}
	got := tl.CallSignature()
	want := map[string]bool{"update r 7": true, "update r 2": true, "update r 1": true, "update b 1": true, "insert e 6": true}
	if len(got) != len(want) {
		t.Fatalf("calls %v", got)
	}
	for _, g := range got {
		if !want[g] {
			t.Fatalf("calls %v", got)
		}
	}
	// On MongoDB: find r (+2 getMores), update r (7), update r (2), UpdateMany r, update b, find p, insert e = 9.
	if n := tl.At(5000); n != 9 {
		t.Fatalf("At(5000) = %d, want 9", n)
	}
	if n := tl.At(3); n != 12 {
		t.Fatalf("At(3) = %d, want 12", n)
	}
}
