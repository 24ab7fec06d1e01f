package pipeline

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/floridify/batchsynth/internal/synthesis"
)

// writeFloridify sends the accumulated writes as bulk writes: examples first, so a definition never links
// an example that does not exist.
func (d *Deps) writeFloridify(ctx context.Context, w *synthesis.Writes) error {
	if w.Empty() {
		return nil
	}
	if ex := w.ExampleModels(); len(ex) > 0 {
		if err := d.Store.BulkWrite(ctx, d.Store.Examples, ex, false); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("error writing examples: %w", err)
		}
	}
	var defModels []mongo.WriteModel
	for defID, keep := range w.ForcedExamples() {
		// --force regenerates: older generated examples of this definition go, literature examples stay.
		filter := bson.M{"definition_id": defID, "type": "generated", "_id": bson.M{"$nin": keep}}
		cur, err := d.Store.Examples.Find(ctx, filter, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return fmt.Errorf("error finding old examples: %w", err)
		}
		var old []struct {
			ID bson.ObjectID `bson:"_id"`
		}
		if err := cur.All(ctx, &old); err != nil {
			return err
		}
		if len(old) == 0 {
			continue
		}
		oldIDs := make([]bson.ObjectID, len(old))
		for i, o := range old {
			oldIDs[i] = o.ID
		}
		defModels = append(defModels, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": defID}).
			SetUpdate(bson.M{"$pull": bson.M{"example_ids": bson.M{"$in": oldIDs}}}))
		if _, err := d.Store.Examples.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": oldIDs}}); err != nil {
			return fmt.Errorf("error removing old examples: %w", err)
		}
	}
	defModels = append(defModels, w.DefinitionModels()...)
	if len(defModels) > 0 {
		// Ordered: a $pull of old examples must land before the $addToSet of new ones.
		if err := d.Store.BulkWrite(ctx, d.Store.Definitions, defModels, true); err != nil {
			return fmt.Errorf("error writing definitions: %w", err)
		}
	}
	return nil
}

