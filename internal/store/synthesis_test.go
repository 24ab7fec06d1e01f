package store

import (
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestJobInputWords(t *testing.T) {
	words := InputWords{
		{Word: "bank", Language: "en", Line: 3, Definitions: []InputDefinition{{PartOfSpeech: "noun", Text: "sloping land"}}},
		{Word: "élan"},
	}
	in := JobInput{ID: "job_1:0", JobID: "job_1", Seq: 0, Words: words}
	raw, err := bson.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if typ := bson.Raw(raw).Lookup("words").Type; typ != bson.TypeBinary {
		t.Fatalf("words stored as %v, want one binary value", typ)
	}
	var out JobInput
	if err := bson.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}

	// A chunk written as an array of documents, as before, still reads.
	old, err := bson.Marshal(bson.M{"_id": "job_1:0", "job_id": "job_1", "seq": 0, "words": []InputWord(words)})
	if err != nil {
		t.Fatal(err)
	}
	out = JobInput{}
	if err := bson.Unmarshal(old, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("array form: got %+v, want %+v", out, in)
	}

	// A truncated value is an error, not a short chunk.
	bad := append([]byte(nil), raw...)
	var d bson.D
	if err := bson.Unmarshal(bad, &d); err != nil {
		t.Fatal(err)
	}
	for i, e := range d {
		if e.Key == "words" {
			b := e.Value.(bson.Binary)
			b.Data = b.Data[:len(b.Data)-3]
			d[i].Value = b
		}
	}
	bad, _ = bson.Marshal(d)
	if err := bson.Unmarshal(bad, &out); err == nil {
		t.Fatal("a truncated chunk decoded without error")
	}
}
