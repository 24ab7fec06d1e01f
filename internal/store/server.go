package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// What differs between MongoDB-compatible servers is decided here, once, when a Store learns which server it
// talks to (detect, run by EnsureIndexes and Open), and nowhere else: the stages above store never know.
//
// FerretDB v1.24 (the embedded default for dev and tests) stops answering, the whole server, when one update
// command carries 100 statements or more or touches many documents; its distinct refuses maxTimeMS; its $sum
// over embedded fields returned zeros. So on FerretDB bulk commands are cut to MaxBulk statements, multi-
// document updates go in slices of ids, distinct values are grouped by an aggregation and sums are done here.
// Its multi-document updates also evaluate the filter before writing without re-checking it: two racing
// claims could both take a request, which is why builds of one model are serialised by a Redis lock
// (pipeline.lockModel), a rule that costs nothing on MongoDB.

// OpenOptions tune Open.
type OpenOptions struct {
	// MaxBulk overrides the statements per bulk command chosen for the server (BATCHSYNTH_MONGO_MAX_BULK); 0
	// keeps the server's.
	MaxBulk int
	// ReadOnly skips creating indexes, for a command that only reads (the estimate).
	ReadOnly bool
}

// Open connects to uri, learns which server it is and creates the indexes (unless ReadOnly).
func Open(ctx context.Context, uri, database string, o OpenOptions) (*Store, error) {
	cl, err := dial(ctx, uri)
	if err != nil {
		return nil, err
	}
	s := New(cl, database)
	if o.ReadOnly {
		s.detect(ctx)
	} else if err := s.EnsureIndexes(ctx); err != nil {
		_ = cl.Disconnect(context.Background())
		return nil, err
	}
	if o.MaxBulk > 0 {
		s.MaxBulk = o.MaxBulk
	}
	return s, nil
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.client.Ping(ctx, nil) }

// Close disconnects from the server.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// isFerretDB asks the server what it is; FerretDB's buildInfo carries a "ferretdb" section.
func isFerretDB(ctx context.Context, cl *mongo.Client) bool {
	var info bson.M
	if err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false
	}
	for k := range info {
		if strings.Contains(strings.ToLower(k), "ferretdb") {
			return true
		}
	}
	return false
}

// distinctStrings returns the distinct non-empty string values of field under filter. It groups with an
// aggregation rather than the distinct command, which FerretDB refuses when the client sets maxTimeMS.
func distinctStrings(ctx context.Context, c *mongo.Collection, field string, filter bson.M) ([]string, error) {
	cur, err := c.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: filter}},
		{{Key: "$group", Value: bson.M{"_id": "$" + field}}},
	})
	if err != nil {
		return nil, fmt.Errorf("error listing distinct %s of %s: %w", field, c.Name(), err)
	}
	defer cur.Close(ctx)
	var out []string
	for cur.Next(ctx) {
		if s, ok := cur.Current.Lookup("_id").StringValueOK(); ok && s != "" {
			out = append(out, s)
		}
	}
	return out, cur.Err()
}

// FerretDBMaxBulk bounds the statements per bulk command on FerretDB: v1.24 with its SQLite backend stops
// answering (the whole server) when one update command carries 100 statements or more.
const FerretDBMaxBulk = 50

// MaxBulkDefault is the statements per bulk command on MongoDB.
const MaxBulkDefault = 5000

// detect sets the FerretDB limits.
func (s *Store) detect(ctx context.Context) {
	if isFerretDB(ctx, s.client) {
		s.FerretDB = true
		s.MaxBulk = FerretDBMaxBulk
	}
}

// bulkWrite sends models in commands of at most MaxBulk statements. With ordered, the first error stops it.
func (s *Store) bulkWrite(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel, ordered bool) error {
	size := s.MaxBulk
	if size <= 0 {
		size = MaxBulkDefault
	}
	if allInserts(models) {
		// Inserts are one command of many documents, which FerretDB handles well; only updates must be split.
		size = len(models)
	}
	var errs []error
	for start := 0; start < len(models); start += size {
		end := min(start+size, len(models))
		_, err := c.BulkWrite(ctx, models[start:end], options.BulkWrite().SetOrdered(ordered))
		if err != nil {
			if ordered {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func allInserts(models []mongo.WriteModel) bool {
	for _, m := range models {
		if _, ok := m.(*mongo.InsertOneModel); !ok {
			return false
		}
	}
	return len(models) > 0
}

// updateMany is coll.UpdateMany, except on FerretDB, where an update touching many documents in one command
// can stall the server (as bulk commands of 100 statements do): there it reads the matching ids and updates
// them in slices of MaxBulk, each slice keeping the original filter, so the compare-and-set still holds.
func (s *Store) updateMany(ctx context.Context, c *mongo.Collection, filter bson.M, update any) (*mongo.UpdateResult, error) {
	if !s.FerretDB {
		return c.UpdateMany(ctx, filter, update)
	}
	cur, err := c.Find(ctx, filter, options.Find().SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID any `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, err
	}
	total := &mongo.UpdateResult{}
	size := max(s.MaxBulk, 1)
	for start := 0; start < len(rows); start += size {
		end := min(start+size, len(rows))
		ids := make(bson.A, 0, end-start)
		for _, r := range rows[start:end] {
			ids = append(ids, r.ID)
		}
		f := bson.M{}
		for k, v := range filter {
			f[k] = v
		}
		if prev, ok := f["_id"]; ok {
			f["$and"] = bson.A{bson.M{"_id": prev}, bson.M{"_id": bson.M{"$in": ids}}}
			delete(f, "_id")
		} else {
			f["_id"] = bson.M{"$in": ids}
		}
		res, err := c.UpdateMany(ctx, f, update)
		if err != nil {
			return total, err
		}
		total.MatchedCount += res.MatchedCount
		total.ModifiedCount += res.ModifiedCount
	}
	return total, nil
}
