package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Store holds the collections of one database. They are unexported: every read and move goes through a typed
// method of this package, so that each compare-and-set and each server-specific rule is written once.
type Store struct {
	client *mongo.Client
	db     *mongo.Database

	words, definitions, examples, pronunciations, facts, entries *mongo.Collection
	jobs, inputs, requests, batches, models                      *mongo.Collection
	// bodies holds each request's rendered body (RequestBody), apart from requests: bodies are large and
	// read once, by the build, while request documents are read and written at every step (and, on
	// FerretDB, every query reads the whole collection).
	bodies *mongo.Collection

	// FerretDB is set when the server is FerretDB, whose limits differ (see FerretDBMaxBulk). Only store and
	// test infrastructure (benchmarks that tune MaxBulk) read it.
	FerretDB bool
	// MaxBulk is the most statements sent in one bulk command.
	MaxBulk int
}

// Collection is a collection of the store's database, by name (store.CollRequests, ...), for test
// infrastructure only (the chaos audit, benchmarks, tests that seed or inspect documents): production code
// goes through the typed methods.
func (s *Store) Collection(name string) *mongo.Collection { return s.db.Collection(name) }

// Connect dials uri (MongoDB or a wire-compatible server) and checks it answers.
func Connect(ctx context.Context, uri string, opts ...*options.ClientOptions) (*mongo.Client, error) {
	return dial(ctx, uri, opts...)
}

func dial(ctx context.Context, uri string, opts ...*options.ClientOptions) (*mongo.Client, error) {
	o := options.Client().ApplyURI(uri).SetTimeout(2 * time.Minute)
	cl, err := mongo.Connect(append([]*options.ClientOptions{o}, opts...)...)
	if err != nil {
		// The driver's error may quote the URI; callers log only this message.
		return nil, fmt.Errorf("error connecting to MongoDB: %v", redact(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := cl.Ping(pctx, nil); err != nil {
		_ = cl.Disconnect(context.Background())
		return nil, fmt.Errorf("error pinging MongoDB: %v", redact(err))
	}
	return cl, nil
}

// redact drops a URI (which may hold a password) from a driver error message.
func redact(err error) string {
	s := err.Error()
	for _, scheme := range []string{"mongodb://", "mongodb+srv://"} {
		if i := strings.Index(s, scheme); i >= 0 {
			s = s[:i] + "(uri hidden)"
		}
	}
	return s
}

// New wraps an open client.
func New(cl *mongo.Client, database string) *Store {
	db := cl.Database(database)
	return &Store{
		client: cl, db: db,
		words: db.Collection(CollWords), definitions: db.Collection(CollDefinitions),
		examples: db.Collection(CollExamples), pronunciations: db.Collection(CollPronunciations),
		facts: db.Collection(CollFacts), entries: db.Collection(CollDictionaryEntries),
		jobs: db.Collection(CollJobs), inputs: db.Collection(CollInputs),
		requests: db.Collection(CollRequests), batches: db.Collection(CollBatches),
		models: db.Collection(CollModelHold), bodies: db.Collection(CollRequestBodies),
	}
}

// EnsureIndexes creates the indexes batchsynth's queries need (and Floridify's own on the collections it
// writes). Creating an existing index is a no-op, so every process runs it at start.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	s.detect(ctx)
	idx := map[*mongo.Collection][]mongo.IndexModel{
		s.words: {
			{Keys: bson.D{{Key: "text", Value: 1}, {Key: "languages", Value: 1}}},
			{Keys: bson.D{{Key: "normalized", Value: 1}}},
		},
		s.definitions: {
			{Keys: bson.D{{Key: "word_id", Value: 1}}},
			{Keys: bson.D{{Key: "word_id", Value: 1}, {Key: "part_of_speech", Value: 1}}},
		},
		s.examples: {
			{Keys: bson.D{{Key: "definition_id", Value: 1}}},
			{Keys: bson.D{{Key: "type", Value: 1}}},
		},
		s.pronunciations: {{Keys: bson.D{{Key: "word_id", Value: 1}}}},
		s.facts:          {{Keys: bson.D{{Key: "word_id", Value: 1}}}},
		s.entries: {
			{Keys: bson.D{{Key: "word_id", Value: 1}, {Key: "provider", Value: 1}}},
		},
		s.inputs: {{Keys: bson.D{{Key: "job_id", Value: 1}, {Key: "seq", Value: 1}}}},
		s.requests: {
			{Keys: bson.D{{Key: "state", Value: 1}, {Key: "model", Value: 1}, {Key: "created_at", Value: 1}}},
			{Keys: bson.D{{Key: "batch_id", Value: 1}, {Key: "state", Value: 1}}},
			{Keys: bson.D{{Key: "job_ids", Value: 1}, {Key: "state", Value: 1}}},
			{Keys: bson.D{{Key: "definition_ids", Value: 1}}},
			{Keys: bson.D{{Key: "body_hash", Value: 1}, {Key: "state", Value: 1}}},
		},
		s.batches: {
			{Keys: bson.D{{Key: "state", Value: 1}, {Key: "model", Value: 1}}},
			{Keys: bson.D{{Key: "created_at", Value: -1}}},
		},
		s.jobs: {{Keys: bson.D{{Key: "created_at", Value: -1}}}},
	}
	for c, models := range idx {
		// Create only what is missing: FerretDB's createIndexes breaks on an index that already exists.
		have := map[string]bool{}
		if cur, err := c.Indexes().List(ctx); err == nil {
			var specs []struct {
				Key bson.D `bson:"key"`
			}
			if err := cur.All(ctx, &specs); err == nil {
				for _, sp := range specs {
					have[keyString(sp.Key)] = true
				}
			}
		}
		var missing []mongo.IndexModel
		for _, m := range models {
			if !have[keyString(m.Keys.(bson.D))] {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := c.Indexes().CreateMany(ctx, missing); err != nil {
			return fmt.Errorf("error creating indexes on %s: %w", c.Name(), err)
		}
	}
	return nil
}

func keyString(d bson.D) string {
	var b strings.Builder
	for _, e := range d {
		fmt.Fprintf(&b, "%s:%v,", e.Key, e.Value)
	}
	return b.String()
}

// ErrNotFound is returned for an unknown job or batch id.
var ErrNotFound = errors.New("not found")

// Job loads one job.
func (s *Store) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	err := s.jobs.FindOne(ctx, bson.M{"_id": id}).Decode(&j)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading job %q: %w", id, err)
	}
	return &j, nil
}

// Batch loads one batch by our id or OpenAI's.
func (s *Store) Batch(ctx context.Context, id string) (*Batch, error) {
	var b Batch
	err := s.batches.FindOne(ctx, bson.M{"$or": bson.A{bson.M{"_id": id}, bson.M{"openai_batch_id": id}}}).Decode(&b)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("batch %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading batch %q: %w", id, err)
	}
	return &b, nil
}

// StateCounts counts requests by state under filter.
func (s *Store) StateCounts(ctx context.Context, filter bson.M) (map[RequestState]int, error) {
	cur, err := s.requests.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: filter}},
		{{Key: "$group", Value: bson.M{"_id": "$state", "n": bson.M{"$sum": 1}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("error counting requests: %w", err)
	}
	defer cur.Close(ctx)
	out := map[RequestState]int{}
	for cur.Next(ctx) {
		var row struct {
			ID RequestState `bson:"_id"`
			N  int          `bson:"n"`
		}
		if err := cur.Decode(&row); err != nil {
			return nil, err
		}
		out[row.ID] = row.N
	}
	return out, cur.Err()
}

// InsertBodies stores request bodies, keeping any already stored: a request's id determines its body.
// Bodies are written before their requests, so no request is without its body.
func (s *Store) InsertBodies(ctx context.Context, bodies []RequestBody) error {
	if len(bodies) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(bodies))
	for i := range bodies {
		models[i] = mongo.NewInsertOneModel().SetDocument(&bodies[i])
	}
	if err := s.bulkWrite(ctx, s.bodies, models, false); err != nil {
		if _, dup := duplicateIndexes(err); !dup {
			return fmt.Errorf("error writing request bodies: %w", err)
		}
	}
	return nil
}

// BodiesOf loads the bodies of the requests ids, by request id. A missing body is an error.
func (s *Store) BodiesOf(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for part := range slices.Chunk(ids, 5000) {
		cur, err := s.bodies.Find(ctx, bson.M{"_id": bson.M{"$in": part}}, options.Find().SetBatchSize(int32(len(part))))
		if err != nil {
			return nil, fmt.Errorf("error reading request bodies: %w", err)
		}
		var bodies []RequestBody
		if err := cur.All(ctx, &bodies); err != nil {
			return nil, fmt.Errorf("error reading request bodies: %w", err)
		}
		for _, b := range bodies {
			out[b.ID] = b.Body
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("request %s has no stored body", id)
		}
	}
	return out, nil
}

// duplicateIndexes returns the positions of the models a bulk write refused as duplicate keys, and false if
// it failed for any other reason.
func duplicateIndexes(err error) ([]int, bool) {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, false
	}
	out := make([]int, 0, len(bwe.WriteErrors))
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return nil, false
		}
		out = append(out, we.Index)
	}
	return out, true
}
