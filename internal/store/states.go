package store

import (
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The three state machines of batchsynth: a request, a batch document and a job. This file is the one
// table of the moves each allows; every compare-and-set method of the store names its move through
// requestMove, batchMove or jobMove, which refuse (panic: a programming error, caught by any test that
// runs the method) a move the table does not hold. docs/architecture.md draws the same table.

// RequestState is where one synthesis request stands.
type RequestState string

const (
	StatePending   RequestState = "pending"   // waiting for a batch (or the immediate transport)
	StateClaimed   RequestState = "claimed"   // taken by a batch document being built, or by an immediate call
	StateSubmitted RequestState = "submitted" // its batch exists at the provider
	StateSucceeded RequestState = "succeeded" // answered and validated (applied once Applied is set)
	StateDead      RequestState = "dead"      // could not be answered within its attempts
	StateCancelled RequestState = "cancelled" // its job or batch was cancelled
)

// RequestStates lists every request state, in the order of the pipeline.
var RequestStates = []RequestState{StatePending, StateClaimed, StateSubmitted, StateSucceeded, StateDead, StateCancelled}

// Settled reports whether a request in state s stays there without a user action (retry, force).
func (s RequestState) Settled() bool {
	return s == StateSucceeded || s == StateDead || s == StateCancelled
}

// InFlight reports whether a request in state s is still on its way to an answer.
func (s RequestState) InFlight() bool {
	return s == StatePending || s == StateClaimed || s == StateSubmitted
}

// BatchState is where one batch document stands (ours; the provider's own status is kept beside it).
type BatchState string

const (
	BatchClaiming  BatchState = "claiming"  // requests being claimed
	BatchUploading BatchState = "uploading" // requests claimed; input file being rendered and uploaded
	BatchUploaded  BatchState = "uploaded"  // input file id recorded
	BatchCreating  BatchState = "creating"  // create called; outcome unknown until recorded (reconcile by metadata)
	BatchSubmitted BatchState = "submitted" // provider batch id recorded; polled
	BatchTerminal  BatchState = "terminal"  // provider status terminal; results to apply
	BatchApplied   BatchState = "applied"   // every request settled
	BatchAbandoned BatchState = "abandoned" // never created (definitive create error or nothing claimed); requests released
)

// BatchStates lists every batch state, in the order of the pipeline.
var BatchStates = []BatchState{BatchClaiming, BatchUploading, BatchUploaded, BatchCreating, BatchSubmitted, BatchTerminal, BatchApplied, BatchAbandoned}

// BuildStates are the states of a batch document that a builder is working on.
var BuildStates = []BatchState{BatchClaiming, BatchUploading, BatchUploaded, BatchCreating}

// Building reports whether a builder is still working on a batch document in state s.
func (s BatchState) Building() bool { return slices.Contains(BuildStates, s) }

// JobStatus is where one job stands. A job is running once expanded; only the sweep marks it done.
type JobStatus string

const (
	JobSubmitted JobStatus = "submitted" // stored; expansion not started
	JobExpanding JobStatus = "expanding" // its words are being expanded into requests
	JobRunning   JobStatus = "running"   // expanded; requests on their way
	JobDone      JobStatus = "done"      // every request settled and every success applied
	JobCancelled JobStatus = "cancelled" // cancelled by a user before it was done
)

// JobStatuses lists every job status, in the order of the pipeline.
var JobStatuses = []JobStatus{JobSubmitted, JobExpanding, JobRunning, JobDone, JobCancelled}

// Finished reports whether a job in status s has ended.
func (s JobStatus) Finished() bool { return s == JobDone || s == JobCancelled }

// Expanded reports whether a job in status s has all its requests written.
func (s JobStatus) Expanded() bool { return s == JobRunning || s.Finished() }

// requestMoves is the table of allowed request moves (from -> to).
var requestMoves = map[RequestState][]RequestState{
	StatePending: {
		StateClaimed,   // a build or an immediate call takes it
		StateCancelled, // its job is cancelled
	},
	StateClaimed: {
		StateSubmitted, // its batch was created at the provider
		StatePending,   // released: its batch was never created, or a transport error before any answer
		StateSucceeded, // an immediate answer
		StateDead,      // an immediate answer that used up its attempts
		StateCancelled, // its batch was cancelled before it was sent
	},
	StateSubmitted: {
		StateSucceeded, // a valid answer
		StatePending,   // a failed attempt with attempts left, or a whole-batch event (expired, failed)
		StateDead,      // a failed attempt with no attempts left
		StateCancelled, // its batch was cancelled and left it unanswered
	},
	StateSucceeded: {
		StatePending, // a cached answer that no longer validates is asked again
	},
	StateDead:      {StatePending}, // retry
	StateCancelled: {StatePending}, // retry
}

// batchMoves is the table of allowed batch document moves.
var batchMoves = map[BatchState][]BatchState{
	BatchClaiming:  {BatchUploading, BatchAbandoned},
	BatchUploading: {BatchUploaded, BatchAbandoned},
	BatchUploaded:  {BatchCreating, BatchAbandoned},
	BatchCreating:  {BatchSubmitted, BatchAbandoned, BatchUploaded}, // back to uploaded: the fresh input file was not visible yet, nothing was created
	BatchSubmitted: {BatchTerminal},
	BatchTerminal:  {BatchApplied},
}

// jobMoves is the table of allowed job moves.
var jobMoves = map[JobStatus][]JobStatus{
	JobSubmitted: {JobExpanding, JobCancelled},
	JobExpanding: {JobRunning, JobCancelled},
	JobRunning:   {JobDone, JobCancelled},
	JobDone:      {JobRunning}, // retry or force brings requests back
	JobCancelled: {JobRunning}, // retry
}

// CanMove reports whether the table allows a request to move from s to to.
func (s RequestState) CanMove(to RequestState) bool { return slices.Contains(requestMoves[s], to) }

// CanMove reports whether the table allows a batch document to move from s to to.
func (s BatchState) CanMove(to BatchState) bool { return slices.Contains(batchMoves[s], to) }

// CanMove reports whether the table allows a job to move from s to to.
func (s JobStatus) CanMove(to JobStatus) bool { return slices.Contains(jobMoves[s], to) }

// requestMove returns the state filter of a compare-and-set move of requests from any of from to to.
func requestMove(to RequestState, from ...RequestState) any {
	for _, f := range from {
		if !f.CanMove(to) {
			panic(fmt.Sprintf("store: request move %s -> %s is not in the table", f, to))
		}
	}
	return stateIn(from)
}

// batchMove returns the state filter of a compare-and-set move of batch documents from any of from to to.
func batchMove(to BatchState, from ...BatchState) any {
	for _, f := range from {
		if !f.CanMove(to) {
			panic(fmt.Sprintf("store: batch move %s -> %s is not in the table", f, to))
		}
	}
	return stateIn(from)
}

// jobMove returns the status filter of a compare-and-set move of jobs from any of from to to.
func jobMove(to JobStatus, from ...JobStatus) any {
	for _, f := range from {
		if !f.CanMove(to) {
			panic(fmt.Sprintf("store: job move %s -> %s is not in the table", f, to))
		}
	}
	return stateIn(from)
}

// stateIn is the filter value matching any of states: the state itself for one.
func stateIn[S ~string](states []S) any {
	if len(states) == 1 {
		return states[0]
	}
	return bson.M{"$in": states}
}
