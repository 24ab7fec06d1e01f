package store

import "testing"

// TestMoveTable checks the one table of moves: every state a method can move to or from is listed, no state
// moves to itself, and a move outside the table is refused.
func TestMoveTable(t *testing.T) {
	for from, tos := range requestMoves {
		for _, to := range tos {
			if from == to || !from.CanMove(to) {
				t.Errorf("request move %s -> %s", from, to)
			}
		}
	}
	for _, s := range RequestStates {
		if _, ok := requestMoves[s]; !ok {
			t.Errorf("request state %s has no row: it could never be left", s)
		}
	}
	for _, s := range BatchStates {
		if _, ok := batchMoves[s]; !ok && s != BatchApplied && s != BatchAbandoned {
			t.Errorf("batch state %s has no row, but only applied and abandoned are final", s)
		}
	}
	for _, s := range JobStatuses {
		if _, ok := jobMoves[s]; !ok {
			t.Errorf("job status %s has no row", s)
		}
	}
	if StateSucceeded.CanMove(StateDead) || BatchApplied.CanMove(BatchSubmitted) || JobDone.CanMove(JobCancelled) {
		t.Error("a move outside the table is allowed")
	}
	refused := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: a move outside the table built a filter", name)
			}
		}()
		f()
	}
	refused("request succeeded -> dead", func() { requestMove(StateDead, StateSucceeded) })
	refused("batch applied -> submitted", func() { batchMove(BatchSubmitted, BatchApplied) })
	refused("job done -> cancelled", func() { jobMove(JobCancelled, JobDone) })
	if got := requestMove(StateClaimed, StatePending); got != StatePending {
		t.Errorf("one state: filter %v, want the state itself", got)
	}
}
