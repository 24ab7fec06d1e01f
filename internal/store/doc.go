// Package store is batchsynth's MongoDB layer: Floridify's collections (written exactly as Floridify reads
// them) and batchsynth's own synthesis_jobs, synthesis_job_inputs, synthesis_requests and synthesis_batches.
//
// Every state move is a compare-and-set (the filter names the state being left), so a handler that runs twice,
// or two handlers racing, change nothing the second time. Only features that both MongoDB 6+ and FerretDB
// support are used: no transactions, no change streams.
package store
