package pipeline

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// onlyDuplicates reports a bulk error made only of duplicate-key errors: two runs raced to insert the same
// deterministic _id, and the document is there either way.
func onlyDuplicates(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !onlyDuplicates(e) {
				return false
			}
		}
		return true
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}
