// Package bench holds what batchsynth's benchmarks share: a corpus of real request bodies rendered from
// the shipped WordNet sample, emulator-shaped result files, a peak-heap sampler, a MongoDB command counter
// built on the driver's command monitor, and a Stack that runs the pipeline's steps in-process against
// real services (redis-server, a MongoDB wire server, the Batch API emulator over HTTP). Nothing is mocked.
//
// The package's own tests measure the fleet as a whole (queue traffic, scale-out with worker processes,
// limits at scale, intake over HTTP); the per-path benchmarks live next to the code they measure
// (internal/openaibatch, internal/synthesis, internal/pipeline). docs/benchmarks.md records the figures
// and the commands that produced them.
package bench
