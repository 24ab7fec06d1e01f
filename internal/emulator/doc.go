// Package emulator is an in-repo emulator of OpenAI's Files and Batches APIs,
// served over real HTTP, for tests and for running batchsynth without an
// OpenAI key. Point the real openai-go client at it:
//
//	srv := httptest.NewServer(emulator.New(emulator.Config{Seed: 1}))
//	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("x"))
//
// # Endpoints
//
//   - POST /v1/files (multipart file, purpose), GET /v1/files, GET /v1/files/{id},
//     GET /v1/files/{id}/content, DELETE /v1/files/{id}. A purpose=batch upload must
//     be named *.jsonl. Output and error files have purpose batch_output.
//   - POST /v1/batches, GET /v1/batches (newest first, after/limit cursor),
//     GET /v1/batches/{id}, POST /v1/batches/{id}/cancel.
//   - POST /v1/chat/completions: one synthetic answer, synchronously.
//
// Errors use OpenAI's envelope {"error":{"message","type","param","code"}}.
//
// # Lifecycle
//
// A batch is validating for Config.ValidatingFor, in_progress for
// Config.InProgressFor (request_counts advance evenly), finalizing for
// Config.FinalizingFor, then completed. Status advances lazily, in time order
// across batches, whenever the emulator is read; zero durations make a batch
// complete by the first read after create. Validation failures (failed, with
// errors.data[{code, message, param, line}]) use the codes invalid_json_line,
// duplicate_custom_id, url_mismatch, model_mismatch, empty_file, too_many_tasks,
// file_too_large, missing_required_parameter, invalid_value,
// unsupported_endpoint (only /v1/chat/completions runs), token_limit_exceeded
// and batch_failed (an injected fault). Cancel moves a batch to cancelling and,
// after Config.CancellingFor, to cancelled; [Server.Expire] and
// Faults.RateExpire expire a batch. Lines that never ran are written to the
// error file with code batch_cancelled or batch_expired; request_counts.failed
// counts them.
//
// # Synthetic content
//
// Every response carries the header X-Batchsynth-Emulator: synthetic, and every
// chat.completion has system_fingerprint "batchsynth-emulator". A line whose
// body asks for response_format json_schema gets JSON valid for that schema
// (see [ValidateAgainstSchema] for the keywords supported), with strings such as
// `synthetic examples 2 for "bank"`, where the word comes from a "word: X" line
// of the last user message. Content depends only on Config.Seed and the line's
// custom_id. Usage per line: prompt_tokens = ceil(len(messages JSON)/4),
// completion_tokens = ceil(len(content)/4); a batch's usage sums the lines in
// its output file.
//
// # Faults
//
// [Faults] injects HTTP-level faults (429 with Retry-After, 500, 503, slow
// answers, lost create responses, "Cannot find file" right after upload),
// per-line faults (4xx lines, refusals, cut-off content, schema-invalid JSON,
// shuffled output) and batch-level faults (failed, expired, completed with zero
// successes). [Server.Stats] counts them; [Server.Batches] shows what happened
// to every batch and line.
package emulator
