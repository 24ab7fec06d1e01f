package bench

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// heapObjects is the runtime metric of heap memory occupied by objects, live or not yet swept (HeapAlloc).
const heapObjects = "/memory/classes/heap/objects:bytes"

// HeapPeak samples the heap while a benchmark runs. It reads runtime/metrics (no stop-the-world) every
// 250µs, so a buffer that lives for more than a moment is seen; the garbage collector's own headroom (the
// heap grows to about twice the live data before a cycle, GOGC=100) is part of what it reports, as it is
// part of what the process needs.
type HeapPeak struct {
	base uint64
	peak uint64
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
}

// StartHeapPeak collects garbage, records the heap as the baseline and starts sampling.
func StartHeapPeak() *HeapPeak {
	runtime.GC()
	h := &HeapPeak{stop: make(chan struct{})}
	h.base = readHeap()
	h.peak = h.base
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(250 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sample()
			}
		}
	}()
	return h
}

func (h *HeapPeak) sample() {
	v := readHeap()
	h.mu.Lock()
	h.peak = max(h.peak, v)
	h.mu.Unlock()
}

// Stop ends sampling and returns the baseline and the peak.
func (h *HeapPeak) Stop() (base, peak uint64) {
	h.sample()
	close(h.stop)
	h.wg.Wait()
	return h.base, h.peak
}

// Report stops sampling and reports peak-heap-MiB (absolute) and heap-growth-MiB (peak over the baseline).
func (h *HeapPeak) Report(b *testing.B) {
	base, peak := h.Stop()
	b.ReportMetric(MiB(peak), "peak-heap-MiB")
	b.ReportMetric(MiB(peak-base), "heap-growth-MiB")
}

func readHeap() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// ReportRate reports lines/s (and MB/s when bytes > 0) over the benchmark's timed part.
func ReportRate(b *testing.B, lines int, bytes int64) {
	sec := b.Elapsed().Seconds()
	if sec <= 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(lines)*float64(b.N)/sec, "lines/s")
	if bytes > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/sec/1e6, "MB/s")
	}
}
