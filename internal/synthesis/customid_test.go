package synthesis

import (
	"regexp"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestCustomIDMapsBackToRequest(t *testing.T) {
	word := bson.NewObjectID()
	def := bson.NewObjectID()
	id := RequestKey("definition", []bson.ObjectID{def}, word, []string{"examples", "synonyms"}, "gpt-4o-mini", "packed", "")
	safe := regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	for attempt := 1; attempt <= 12; attempt++ {
		cid := CustomID(id, attempt)
		if !safe.MatchString(cid) {
			t.Fatalf("custom_id %q is not short and [a-z0-9-]", cid)
		}
		gotID, gotAttempt, err := ParseCustomID(cid)
		if err != nil || gotID != id || gotAttempt != attempt {
			t.Fatalf("ParseCustomID(%q) = %q, %d, %v", cid, gotID, gotAttempt, err)
		}
	}
	for _, bad := range []string{"", "r1", "r1-", "-1", "r1-0", "r1-x", "Bank_def0_synonyms", "r_1-1"} {
		if _, _, err := ParseCustomID(bad); err == nil {
			t.Fatalf("ParseCustomID(%q): want an error", bad)
		}
	}
}

func TestRequestKeyIsDeterministicAndDistinct(t *testing.T) {
	word, d1, d2 := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	k := func(defs []bson.ObjectID, comps []string, model, mode, nonce string) string {
		return RequestKey("definition", defs, word, comps, model, mode, nonce)
	}
	base := k([]bson.ObjectID{d1}, []string{"synonyms", "examples"}, "m", "packed", "")
	if base != k([]bson.ObjectID{d1}, []string{"examples", "synonyms"}, "m", "packed", "") {
		t.Fatal("component order must not change the key")
	}
	for name, other := range map[string]string{
		"definition": k([]bson.ObjectID{d2}, []string{"synonyms", "examples"}, "m", "packed", ""),
		"components": k([]bson.ObjectID{d1}, []string{"synonyms"}, "m", "packed", ""),
		"model":      k([]bson.ObjectID{d1}, []string{"synonyms", "examples"}, "m2", "packed", ""),
		"mode":       k([]bson.ObjectID{d1}, []string{"synonyms", "examples"}, "m", "per-component", ""),
		"force":      k([]bson.ObjectID{d1}, []string{"synonyms", "examples"}, "m", "packed", "job_1"),
	} {
		if other == base {
			t.Fatalf("a different %s must give a different key", name)
		}
	}
}
