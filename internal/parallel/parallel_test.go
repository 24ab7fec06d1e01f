package parallel

import (
	"sync/atomic"
	"testing"
)

// TestForCallsEachIndexOnce: every index exactly once, for sizes below and above the one-goroutine cut-off.
func TestForCallsEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 5003} {
		calls := make([]atomic.Int32, n)
		For(n, func(i int) { calls[i].Add(1) })
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
	}
}
