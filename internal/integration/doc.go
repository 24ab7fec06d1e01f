// Package integration holds end-to-end tests of the whole fleet: real redis-server, a real MongoDB wire
// server, the Batch API emulator over HTTP and the openai-go client, asserting what a user would check in
// MongoDB.
package integration
