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

// Store holds the collections of one database.
type Store struct {
	Client *mongo.Client
	DB     *mongo.Database

	Words, Definitions, Examples, Pronunciations, Facts, Entries *mongo.Collection
	Jobs, Inputs, Requests, Batches, Models                      *mongo.Collection
	// Bodies holds each request's rendered body (RequestBody), apart from Requests: bodies are large and
	// read once, by the build, while request documents are read and written at every step (and, on
	// FerretDB, every query reads the whole collection).
	Bodies *mongo.Collection

	// FerretDB is set when the server is FerretDB, whose limits differ (see FerretDBMaxBulk).
	FerretDB bool
	// MaxBulk is the most statements sent in one bulk command.
	MaxBulk int
}

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
		Client: cl, DB: db,
		Words: db.Collection(CollWords), Definitions: db.Collection(CollDefinitions),
		Examples: db.Collection(CollExamples), Pronunciations: db.Collection(CollPronunciations),
		Facts: db.Collection(CollFacts), Entries: db.Collection(CollDictionaryEntries),
		Jobs: db.Collection(CollJobs), Inputs: db.Collection(CollInputs),
		Requests: db.Collection(CollRequests), Batches: db.Collection(CollBatches),
		Models: db.Collection(CollModelHold), Bodies: db.Collection(CollRequestBodies),
	}
}

// EnsureIndexes creates the indexes batchsynth's queries need (and Floridify's own on the collections it
// writes). Creating an existing index is a no-op, so every process runs it at start.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	s.detect(ctx)
	idx := map[*mongo.Collection][]mongo.IndexModel{
		s.Words: {
			{Keys: bson.D{{Key: "text", Value: 1}, {Key: "languages", Value: 1}}},
			{Keys: bson.D{{Key: "normalized", Value: 1}}},
		},
		s.Definitions: {
			{Keys: bson.D{{Key: "word_id", Value: 1}}},
			{Keys: bson.D{{Key: "word_id", Value: 1}, {Key: "part_of_speech", Value: 1}}},
		},
		s.Examples: {
			{Keys: bson.D{{Key: "definition_id", Value: 1}}},
			{Keys: bson.D{{Key: "type", Value: 1}}},
		},
		s.Pronunciations: {{Keys: bson.D{{Key: "word_id", Value: 1}}}},
		s.Facts:          {{Keys: bson.D{{Key: "word_id", Value: 1}}}},
		s.Entries: {
			{Keys: bson.D{{Key: "word_id", Value: 1}, {Key: "provider", Value: 1}}},
		},
		s.Inputs: {{Keys: bson.D{{Key: "job_id", Value: 1}, {Key: "seq", Value: 1}}}},
		s.Requests: {
			{Keys: bson.D{{Key: "state", Value: 1}, {Key: "model", Value: 1}, {Key: "created_at", Value: 1}}},
			{Keys: bson.D{{Key: "batch_id", Value: 1}, {Key: "state", Value: 1}}},
			{Keys: bson.D{{Key: "job_ids", Value: 1}, {Key: "state", Value: 1}}},
			{Keys: bson.D{{Key: "definition_ids", Value: 1}}},
			{Keys: bson.D{{Key: "body_hash", Value: 1}, {Key: "state", Value: 1}}},
		},
		s.Batches: {
			{Keys: bson.D{{Key: "state", Value: 1}, {Key: "model", Value: 1}}},
			{Keys: bson.D{{Key: "created_at", Value: -1}}},
		},
		s.Jobs: {{Keys: bson.D{{Key: "created_at", Value: -1}}}},
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
	err := s.Jobs.FindOne(ctx, bson.M{"_id": id}).Decode(&j)
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
	err := s.Batches.FindOne(ctx, bson.M{"$or": bson.A{bson.M{"_id": id}, bson.M{"openai_batch_id": id}}}).Decode(&b)
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
	cur, err := s.Requests.Aggregate(ctx, mongo.Pipeline{
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

// UsageSum adds up billed usage and cost of requests under filter. It sums client-side: FerretDB's $sum
// over embedded fields returned zeros here, and a projection of three numbers per request is cheap.
func (s *Store) UsageSum(ctx context.Context, filter bson.M) (Usage, float64, error) {
	cur, err := s.Requests.Find(ctx, filter, options.Find().SetProjection(bson.M{"usage": 1, "cost_usd": 1}).SetBatchSize(5000))
	if err != nil {
		return Usage{}, 0, fmt.Errorf("error summing usage: %w", err)
	}
	defer cur.Close(ctx)
	var u Usage
	var cost float64
	for cur.Next(ctx) {
		var row struct {
			Usage Usage   `bson:"usage"`
			Cost  float64 `bson:"cost_usd"`
		}
		if err := cur.Decode(&row); err != nil {
			return u, 0, fmt.Errorf("error summing usage: %w", err)
		}
		u = u.Add(row.Usage)
		cost += row.Cost
	}
	return u, cost, cur.Err()
}

// DistinctStrings returns the distinct non-empty string values of field under filter. It groups with an
// aggregation rather than the distinct command, which FerretDB refuses when the client sets maxTimeMS.
func DistinctStrings(ctx context.Context, c *mongo.Collection, field string, filter bson.M) ([]string, error) {
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
	if isFerretDB(ctx, s.Client) {
		s.FerretDB = true
		s.MaxBulk = FerretDBMaxBulk
	}
}

// BulkWrite sends models in commands of at most MaxBulk statements. With ordered, the first error stops it.
func (s *Store) BulkWrite(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel, ordered bool) error {
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
	if err := s.BulkWrite(ctx, s.Bodies, models, false); err != nil {
		if _, dup := DuplicateIndexes(err); !dup {
			return fmt.Errorf("error writing request bodies: %w", err)
		}
	}
	return nil
}

// BodiesOf loads the bodies of the requests ids, by request id. A missing body is an error.
func (s *Store) BodiesOf(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for part := range slices.Chunk(ids, 5000) {
		cur, err := s.Bodies.Find(ctx, bson.M{"_id": bson.M{"$in": part}}, options.Find().SetBatchSize(int32(len(part))))
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

// DuplicateIndexes returns the positions of the models a bulk write refused as duplicate keys, and false if
// it failed for any other reason.
func DuplicateIndexes(err error) ([]int, bool) {
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

// UpdateMany is coll.UpdateMany, except on FerretDB, where an update touching many documents in one command
// can stall the server (as bulk commands of 100 statements do): there it reads the matching ids and updates
// them in slices of MaxBulk, each slice keeping the original filter, so the compare-and-set still holds.
func (s *Store) UpdateMany(ctx context.Context, c *mongo.Collection, filter bson.M, update any) (*mongo.UpdateResult, error) {
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
