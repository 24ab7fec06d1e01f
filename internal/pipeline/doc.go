// Package pipeline holds the four steps of batchsynth: expanding a job into synthesis requests (Enqueue),
// packing pending requests into OpenAI batches (Build), following a batch (Poll) and applying its results to
// Floridify's collections (Apply). The asynq handlers are thin wrappers around these.
//
// Every step may run twice, concurrently, or die at any line. State moves are compare-and-set on the state
// being left; writes to Floridify's collections are keyed by request id; an OpenAI batch is created at most
// once per synthesis_batches document (its id rides in the batch metadata and is looked up before any
// second create).
package pipeline
