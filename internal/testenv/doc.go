// Package testenv gives tests across the repo real, isolated services:
// a dedicated redis-server per test, a MongoDB database per test on one
// shared wire server per test binary, and the Batch API emulator over HTTP.
//
// Nothing here skips. A test whose service cannot be started fails with a
// message that says what is missing and how to provide it, so a green run
// always means the code ran against the real thing.
//
// Packages that call [Mongo] or [MongoURI] should route TestMain through
// [Main], which stops the shared FerretDB and removes its data directory:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// # Environment
//
//   - MONGODB_URI: use this MongoDB (or FerretDB) server instead of starting an
//     embedded FerretDB. Each test still gets its own database, dropped when
//     the test ends; nothing else on the server is touched.
//   - BATCHSYNTH_TEST_FERRETDB_BACKEND: "sqlite" (default) or "postgresql".
//     SQLite needs nothing installed but slows down sharply past a few
//     thousand documents; PostgreSQL handles benchmark-sized runs.
//   - BATCHSYNTH_TEST_POSTGRES_URL: the PostgreSQL database for the
//     "postgresql" backend; defaults to [PostgresURLDefault].
//
// REDIS_URL is deliberately ignored: [Redis] always starts a redis-server of
// its own, so that tests can run in parallel, flush freely and never touch a
// developer's or a deployment's data, and so that a server with 16 DBs
// cannot run out of DBs to hand out.
package testenv
