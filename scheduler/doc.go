// Package scheduler is the single active scheduler: a leadership lease in Redis, asynq's
// PeriodicTaskManager fed from MongoDB (one poll-batch entry per in-flight batch, gone once the batch is
// terminal), and the sweeps that flush waiting requests and rebuild what Redis lost.
package scheduler
