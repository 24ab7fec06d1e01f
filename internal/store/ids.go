package store

import (
	"crypto/sha256"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ObjectID is the id of a Floridify document. It is the driver's type under a name of store's, so that
// packages outside store handle Floridify ids without importing the MongoDB driver.
type ObjectID = bson.ObjectID

// NewObjectID returns a new random ObjectID.
func NewObjectID() ObjectID { return bson.NewObjectID() }

// ObjectIDFromHex parses the hex form of an ObjectID.
func ObjectIDFromHex(s string) (ObjectID, error) { return bson.ObjectIDFromHex(s) }

// Deterministic ids: concurrent writers of the same word, definition or synthesis entry agree on its _id,
// so an insert-if-absent stores it once. These three are the only place the ids are derived.

// WordID is the _id batchsynth gives a submitted word that Floridify does not have yet.
func WordID(lang, text string) ObjectID { return detID("word", lang, text) }

// DefinitionID is the _id batchsynth gives a submitted definition of a word.
func DefinitionID(wordID ObjectID, pos, text string) ObjectID {
	return detID("definition", wordID.Hex(), pos, text)
}

// EntryID is the _id of a word's synthesis DictionaryEntry.
func EntryID(wordID ObjectID) ObjectID { return detID("entry", wordID.Hex(), ProviderSynthesis) }

// detID derives an ObjectID from parts.
func detID(parts ...string) ObjectID {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var id ObjectID
	copy(id[:], h[:12])
	return id
}
