// Package openaibatch speaks the OpenAI Batch API: JSONL input lines out, result lines in (streamed), and the
// Files and Batches calls through openai-go v3. Batch creation is never retried blindly: the client's own
// retries are off for it, and FindByMetadata finds a batch whose create response was lost.
package openaibatch
