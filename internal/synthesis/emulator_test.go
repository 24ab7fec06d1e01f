package synthesis_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
	"github.com/floridify/batchsynth/internal/synthesis"
	"github.com/floridify/batchsynth/internal/testenv"
)

// TestEmulatorAnswersEveryComponent sends every component's request, in every mode, through the real openai-go
// client to the emulator's /v1/chat/completions, checks the answer against the schema that was uploaded, and
// decodes and applies it.
func TestEmulatorAnswersEveryComponent(t *testing.T) {
	t.Parallel()
	_, baseURL := testenv.Emulator(t, emulator.Config{Seed: 7})
	client := openai.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey("sk-test"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := synthesis.WordInput{WordID: bson.NewObjectID(), Word: "bank", Language: "en", Defs: []store.Definition{
		{ID: bson.NewObjectID(), PartOfSpeech: "noun", Text: "sloping land (especially the slope beside a body of water)"},
		{ID: bson.NewObjectID(), PartOfSpeech: "verb", Text: "tip laterally"},
	}}
	for _, model := range []string{"gpt-4o-mini", synthesis.ModelAuto} {
		for _, mode := range synthesis.Modes() {
			planned, err := synthesis.Plan(w, synthesis.PlanOptions{Mode: mode, Model: model, Components: synthesis.Names()})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			writes := synthesis.NewWrites(time.Now())
			for _, p := range planned {
				cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{}, option.WithRequestBody("application/json", p.Rendered.Body))
				if err != nil {
					t.Fatalf("%s %s %v: %v", model, mode, p.Target.Components, err)
				}
				content := cc.Choices[0].Message.Content
				var b struct {
					ResponseFormat struct {
						JSONSchema struct {
							Schema json.RawMessage `json:"schema"`
						} `json:"json_schema"`
					} `json:"response_format"`
				}
				if err := json.Unmarshal(p.Rendered.Body, &b); err != nil {
					t.Fatal(err)
				}
				if err := emulator.ValidateAgainstSchema(b.ResponseFormat.JSONSchema.Schema, json.RawMessage(content)); err != nil {
					t.Fatalf("%s %v: answer breaks the schema: %v", mode, p.Target.Components, err)
				}
				ids := make([]bson.ObjectID, len(p.Target.Defs))
				for i, d := range p.Target.Defs {
					ids[i] = d.ID
				}
				parsed, err := synthesis.Decode(p.Target.Kind, w.Word, len(ids), p.Target.Components, content)
				if err != nil {
					t.Fatalf("%s %v: %v\n%s", mode, p.Target.Components, err, content)
				}
				if err := writes.Add(synthesis.ApplyInput{RequestID: p.ID, Model: p.Model, WordID: w.WordID, DefinitionIDs: ids}, parsed); err != nil {
					t.Fatal(err)
				}
				for _, c := range p.Target.Components {
					seen[c] = true
				}
			}
			if len(seen) != len(synthesis.Names()) {
				t.Fatalf("%s %s: answered %d components of %d", model, mode, len(seen), len(synthesis.Names()))
			}
			f := writes.Floridify()
			if n := len(f.Definitions); n != 2 {
				t.Fatalf("%s %s: %d definition updates, want 2", model, mode, n)
			}
			if len(f.Entries) != 1 || len(f.Pronunciations) != 1 || len(f.Facts) == 0 {
				t.Fatalf("%s %s: word-level writes missing", model, mode)
			}
		}
	}
}
