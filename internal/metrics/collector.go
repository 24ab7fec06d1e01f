package metrics

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// scrapeTimeout bounds one scrape's reads, below Prometheus's default 10 s scrape timeout.
const scrapeTimeout = 8 * time.Second

// Buckets of the duration histograms: seconds to a day, as a batch may take up to its 24 h window.
var (
	applyBuckets      = []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	turnaroundBuckets = []float64{10, 30, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 24 * 3600}
)

// Options configure Register.
type Options struct {
	// Source reads batchsynth's numbers; required.
	Source *Source
	// Inspector reads asynq's queues; nil leaves the asynq_* metrics out.
	Inspector *asynq.Inspector
	Log       *slog.Logger
}

// Register adds batchsynth's collectors, the asynq queue collector and the Go and process collectors to reg.
func Register(reg prometheus.Registerer, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	cs := []prometheus.Collector{
		&storeCollector{src: o.Source, log: log},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if o.Inspector != nil {
		cs = append(cs, &queueCollector{insp: o.Inspector, log: log})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	descUp = prometheus.NewDesc("batchsynth_store_up",
		"1 if the last read of batchsynth's state from MongoDB succeeded.", nil, nil)
	descRequests = prometheus.NewDesc("batchsynth_requests",
		"Synthesis requests by state.", []string{"state"}, nil)
	descBatches = prometheus.NewDesc("batchsynth_batches",
		"Synthesis batches by batchsynth state.", []string{"state"}, nil)
	descInflight = prometheus.NewDesc("batchsynth_batches_inflight",
		"Submitted batches by OpenAI status.", []string{"status"}, nil)
	descTokens = prometheus.NewDesc("batchsynth_tokens_total",
		"Billed tokens by path (batch, immediate) and kind (input, cached_input, output).", []string{"path", "kind"}, nil)
	descSpent = prometheus.NewDesc("batchsynth_spent_usd_total",
		"Dollars spent by path (batch, immediate).", []string{"path"}, nil)
	descSaved = prometheus.NewDesc("batchsynth_saved_usd_total",
		"Dollars saved by the Batch API against immediate prices for the same tokens.", nil, nil)
	descPollLag = prometheus.NewDesc("batchsynth_poll_lag_seconds",
		"Time since the least recently polled in-flight batch was polled; grows without bound if no scheduler runs.", nil, nil)
	descApply = prometheus.NewDesc("batchsynth_apply_duration_seconds",
		"Per applied batch: time from its terminal status being seen to its results being applied.", nil, nil)
	descTurnaround = prometheus.NewDesc("batchsynth_batch_turnaround_seconds",
		"Per finished batch: time from submission to a terminal OpenAI status.", nil, nil)
)

type storeCollector struct {
	src *Source
	log *slog.Logger
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRequests, descBatches, descInflight, descTokens, descSpent, descSaved, descPollLag, descApply, descTurnaround} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s, err := c.src.Snapshot(ctx)
	if err != nil {
		c.log.Warn("metrics: cannot read state from MongoDB", "error", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, st := range sortedKeys(s.Requests) {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(s.Requests[st]), st)
	}
	for _, st := range sortedKeys(s.Batches) {
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.GaugeValue, float64(s.Batches[st]), st)
	}
	for _, st := range sortedKeys(s.OpenAIStatus) {
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(s.OpenAIStatus[st]), st)
	}
	for path, u := range map[string][3]int64{
		"batch":     {s.BatchUsage.InputTokens, s.BatchUsage.CachedTokens, s.BatchUsage.OutputTokens},
		"immediate": {s.ImmediateUsage.InputTokens, s.ImmediateUsage.CachedTokens, s.ImmediateUsage.OutputTokens},
	} {
		for i, kind := range []string{"input", "cached_input", "output"} {
			ch <- prometheus.MustNewConstMetric(descTokens, prometheus.CounterValue, float64(u[i]), path, kind)
		}
	}
	ch <- prometheus.MustNewConstMetric(descSpent, prometheus.CounterValue, s.BatchUSD, "batch")
	ch <- prometheus.MustNewConstMetric(descSpent, prometheus.CounterValue, s.ImmediateUSD, "immediate")
	ch <- prometheus.MustNewConstMetric(descSaved, prometheus.CounterValue, s.SavedUSD())
	ch <- prometheus.MustNewConstMetric(descPollLag, prometheus.GaugeValue, s.PollLag.Seconds())
	ch <- constHistogram(descApply, s.ApplySeconds, applyBuckets)
	ch <- constHistogram(descTurnaround, s.TurnaroundSeconds, turnaroundBuckets)
}

// constHistogram builds a histogram over every observation recorded in MongoDB. Batches are only ever
// added, so the buckets only grow, as a Prometheus histogram's must.
func constHistogram(d *prometheus.Desc, obs []float64, bounds []float64) prometheus.Metric {
	counts := make(map[float64]uint64, len(bounds))
	var sum float64
	for _, v := range obs {
		sum += v
		for _, b := range bounds {
			if v <= b {
				counts[b]++
			}
		}
	}
	return prometheus.MustNewConstHistogram(d, uint64(len(obs)), sum, counts)
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The asynq metrics keep the names of asynq's own x/metrics exporter, so its dashboards and alerts apply.
var (
	descQueueUp = prometheus.NewDesc("asynq_up",
		"1 if the last read of asynq's queues from Redis succeeded.", nil, nil)
	descQueueTasks = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Tasks in each queue by state.", []string{"queue", "state"}, nil)
	descQueueSize = prometheus.NewDesc("asynq_queue_size",
		"Tasks in the queue (pending, active, scheduled, retry, aggregating and archived).", []string{"queue"}, nil)
	descQueueLatency = prometheus.NewDesc("asynq_queue_latency_seconds",
		"Age of the oldest pending task in the queue.", []string{"queue"}, nil)
	descQueueMemory = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Approximate Redis memory used by the queue.", []string{"queue"}, nil)
	descQueueProcessed = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed by the queue (succeeded and failed).", []string{"queue"}, nil)
	descQueueFailed = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks failed in the queue.", []string{"queue"}, nil)
	descQueuePaused = prometheus.NewDesc("asynq_queue_paused_total",
		"1 if the queue is paused.", []string{"queue"}, nil)
)

type queueCollector struct {
	insp *asynq.Inspector
	log  *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueUp, descQueueTasks, descQueueSize, descQueueLatency, descQueueMemory, descQueueProcessed, descQueueFailed, descQueuePaused} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.insp.Queues()
	if err != nil {
		c.log.Warn("metrics: cannot list asynq queues", "error", err)
		ch <- prometheus.MustNewConstMetric(descQueueUp, prometheus.GaugeValue, 0)
		return
	}
	up := 1.0
	for _, q := range queues {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			c.log.Warn("metrics: cannot read asynq queue", "queue", q, "error", err)
			up = 0
			continue
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled, "retry": info.Retry,
			"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
		} {
			ch <- prometheus.MustNewConstMetric(descQueueTasks, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(descQueueSize, prometheus.GaugeValue, float64(info.Size), q)
		ch <- prometheus.MustNewConstMetric(descQueueLatency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		ch <- prometheus.MustNewConstMetric(descQueueMemory, prometheus.GaugeValue, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(descQueueProcessed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(descQueueFailed, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(descQueuePaused, prometheus.GaugeValue, paused, q)
	}
	ch <- prometheus.MustNewConstMetric(descQueueUp, prometheus.GaugeValue, up)
}
