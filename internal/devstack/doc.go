// Package devstack runs the services batchsynth needs inside the process, so
// that `batchsynth dev` works on a fresh machine with nothing installed: an
// in-memory Redis (miniredis) for the asynq queues and a MongoDB wire server
// (embedded FerretDB) for state.
//
// These are for development only. miniredis keeps everything in memory and
// FerretDB's SQLite backend slows down sharply as collections grow (thousands
// of bulk upserts take tens of seconds), so large runs should use
// [StartMongoPostgres] or real servers.
//
// FerretDB does not support multi-document transactions or change streams;
// code that must also run here cannot rely on them.
package devstack
