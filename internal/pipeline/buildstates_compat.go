package pipeline

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
)

// buildStates keeps control.go compiling until it uses store.BuildStates; this file goes after the merge.
var buildStates = bson.A{store.BatchClaiming, store.BatchUploading, store.BatchUploaded, store.BatchCreating}
