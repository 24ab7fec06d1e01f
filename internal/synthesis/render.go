package synthesis

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/floridify/batchsynth/internal/store"
)

// Request modes.
const (
	ModePacked       = "packed"
	ModePackedWord   = "packed-word"
	ModePerComponent = "per-component"
)

// Modes lists the request modes.
func Modes() []string { return []string{ModePacked, ModePackedWord, ModePerComponent} }

// DefRef is one definition inside a request, in prompt order.
type DefRef struct {
	ID           bson.ObjectID
	PartOfSpeech string
	Text         string
	Counts       Counts
}

// Target is what one request asks about: one definition (Kind definition) or a word with its
// definitions (Kind word), and the components wanted.
type Target struct {
	Kind       string
	WordID     bson.ObjectID
	Word       string
	Language   string
	Defs       []DefRef
	Components []string
}

// Rendered is a request body ready for a JSONL line.
type Rendered struct {
	Body         []byte
	Hash         string
	InputTokens  int64
	OutputTokens int64
}

// maxTextLen bounds sense text inside a prompt, as Floridify truncates its inputs to 500 characters.
const maxTextLen = 500

// IsReasoningModel reports whether model takes max_completion_tokens, no temperature and the developer role.
func IsReasoningModel(model string) bool {
	m := strings.ToLower(model)
	for _, p := range []string{"gpt-5", "o1", "o3", "o4"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type jsonSchema struct {
	Name   string         `json:"name"`
	Strict bool           `json:"strict"`
	Schema map[string]any `json:"schema"`
}

type responseFormat struct {
	Type       string     `json:"type"`
	JSONSchema jsonSchema `json:"json_schema"`
}

// body is a chat-completions request; fields follow the API, omitted when not for this model family.
type body struct {
	Model               string         `json:"model"`
	Messages            []message      `json:"messages"`
	ResponseFormat      responseFormat `json:"response_format"`
	MaxTokens           int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64       `json:"temperature,omitempty"`
	ReasoningEffort     string         `json:"reasoning_effort,omitempty"`
}

// static is the part of a request that depends only on the kind and the component set: rendered once, and
// placed first in the body so that prompt caching can apply.
type static struct {
	developer    string
	schema       map[string]any
	schemaTokens int64
	devTokens    int64
	generative   bool
}

var staticCache sync.Map // key kind|components -> *static

func staticFor(kind string, comps []*Component) *static {
	names := make([]string, len(comps))
	for i, c := range comps {
		names[i] = c.Name
	}
	key := kind + "|" + strings.Join(names, ",")
	if v, ok := staticCache.Load(key); ok {
		return v.(*static)
	}
	var b strings.Builder
	var defComps, wordComps []*Component
	for _, c := range comps {
		if c.Level == WordLevel {
			wordComps = append(wordComps, c)
		} else {
			defComps = append(defComps, c)
		}
	}
	switch {
	case kind == store.TargetWord && len(defComps) > 0:
		b.WriteString("You enrich a dictionary headword. Reply with JSON for the schema. \"senses\" has one entry per numbered sense, in order. N is the count given for each sense.\n")
	case kind == store.TargetWord:
		b.WriteString("You enrich a dictionary headword. Reply with JSON for the schema.\n")
	default:
		b.WriteString("You enrich one sense of a dictionary headword. Reply with JSON for the schema. N is the count given.\n")
	}
	generative := false
	for _, c := range comps {
		b.WriteString("- ")
		b.WriteString(c.Rule)
		b.WriteByte('\n')
		if c.CountOf != nil {
			generative = true
		}
	}
	defSchema := objectSchema(defComps)
	schema := defSchema
	if kind == store.TargetWord {
		props := map[string]any{}
		req := []string{}
		if len(defComps) > 0 {
			props["senses"] = map[string]any{"type": "array", "items": defSchema}
			req = append(req, "senses")
		}
		for _, c := range wordComps {
			props[c.Name] = c.Schema
			req = append(req, c.Name)
		}
		schema = map[string]any{"type": "object", "properties": props, "required": req, "additionalProperties": false}
	}
	sj, _ := json.Marshal(schema)
	s := &static{
		developer:    strings.TrimRight(b.String(), "\n"),
		schema:       schema,
		schemaTokens: CountTokens(string(sj)),
		generative:   generative,
	}
	s.devTokens = CountTokens(s.developer)
	v, _ := staticCache.LoadOrStore(key, s)
	return v.(*static)
}

func objectSchema(comps []*Component) map[string]any {
	props := map[string]any{}
	req := make([]string, 0, len(comps))
	for _, c := range comps {
		props[c.Name] = c.Schema
		req = append(req, c.Name)
	}
	return map[string]any{"type": "object", "properties": props, "required": req, "additionalProperties": false}
}

// Render builds the chat-completions body for t on model. The developer message and schema are static for a
// component set; the word-specific text comes last.
func Render(model string, t Target) (Rendered, error) {
	if strings.TrimSpace(t.Word) == "" {
		return Rendered{}, fmt.Errorf("empty word")
	}
	comps, err := components(t.Components)
	if err != nil {
		return Rendered{}, err
	}
	if t.Kind == store.TargetDefinition && len(t.Defs) != 1 {
		return Rendered{}, fmt.Errorf("a definition request needs exactly one definition, got %d", len(t.Defs))
	}
	st := staticFor(t.Kind, comps)
	user := userMessage(t, comps)
	var out int64 = 10
	for _, c := range comps {
		if c.Level == WordLevel {
			out += int64(c.OutputTokens(Counts{}))
			continue
		}
		for _, d := range t.Defs {
			out += int64(c.OutputTokens(d.Counts))
		}
	}
	if t.Kind == store.TargetWord {
		out += int64(4 * len(t.Defs))
	}
	bd := body{
		Model: model,
		ResponseFormat: responseFormat{Type: "json_schema", JSONSchema: jsonSchema{
			Name: "enrichment", Strict: true, Schema: st.schema,
		}},
	}
	role := "system"
	if IsReasoningModel(model) {
		role = "developer"
		// Reasoning tokens count against max_completion_tokens; keep headroom but ask for minimal effort.
		bd.MaxCompletionTokens = int(out)*2 + 2000
		bd.ReasoningEffort = "minimal"
	} else {
		bd.MaxTokens = int(out)*2 + 200
		temp := 0.3
		if st.generative {
			temp = 0.7
		}
		bd.Temperature = &temp
	}
	bd.Messages = []message{{Role: role, Content: st.developer}, {Role: "user", Content: user}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bd); err != nil {
		return Rendered{}, fmt.Errorf("error encoding body: %w", err)
	}
	raw := bytes.TrimRight(buf.Bytes(), "\n")
	sum := sha256.Sum256(raw)
	// Chat framing: about 3 tokens per message plus 3 for the reply priming.
	in := st.devTokens + st.schemaTokens + CountTokens(user) + 2*3 + 3
	return Rendered{Body: raw, Hash: hex.EncodeToString(sum[:16]), InputTokens: in, OutputTokens: out}, nil
}

func components(names []string) ([]*Component, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no component")
	}
	out := make([]*Component, 0, len(names))
	for _, n := range sortComponents(names) {
		c, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown component %q", n)
		}
		out = append(out, c)
	}
	return out, nil
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxTextLen {
		return s
	}
	cut := maxTextLen
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func countsText(comps []*Component, c Counts) string {
	var parts []string
	for _, comp := range comps {
		if comp.Level == DefinitionLevel && comp.CountOf != nil {
			parts = append(parts, comp.Name+" "+strconv.Itoa(comp.CountOf(c)))
		}
	}
	return strings.Join(parts, ", ")
}

func userMessage(t Target, comps []*Component) string {
	var b strings.Builder
	b.WriteString("word: ")
	b.WriteString(clip(t.Word))
	if t.Language != "" && t.Language != "en" {
		b.WriteString("\nlanguage: ")
		b.WriteString(t.Language)
	}
	if t.Kind == store.TargetDefinition {
		d := t.Defs[0]
		b.WriteString("\npos: ")
		b.WriteString(d.PartOfSpeech)
		b.WriteString("\ndefinition: ")
		b.WriteString(clip(d.Text))
		if ct := countsText(comps, d.Counts); ct != "" {
			b.WriteString("\nN: ")
			b.WriteString(ct)
		}
		return b.String()
	}
	hasDef := false
	for _, c := range comps {
		if c.Level == DefinitionLevel {
			hasDef = true
		}
	}
	if !hasDef {
		return b.String()
	}
	b.WriteString("\nsenses:")
	for i, d := range t.Defs {
		b.WriteString("\n")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". (")
		b.WriteString(d.PartOfSpeech)
		b.WriteString(") ")
		b.WriteString(clip(d.Text))
		if ct := countsText(comps, d.Counts); ct != "" {
			b.WriteString(" [N: ")
			b.WriteString(ct)
			b.WriteString("]")
		}
	}
	return b.String()
}

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RequestKey is the deterministic _id of a request: the same piece (target, components, prompt version,
// model, mode) always gets the same key. nonce separates forced regenerations (the job id) from the rest.
func RequestKey(kind string, defIDs []bson.ObjectID, wordID bson.ObjectID, comps []string, model, mode, nonce string) string {
	h := sha256.New()
	for _, s := range []string{kind, wordID.Hex(), strings.Join(sortComponents(comps), ","), PromptVersion, model, mode, nonce} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, id := range defIDs {
		h.Write(id[:])
	}
	return "r" + keyEncoding.EncodeToString(h.Sum(nil)[:15])
}

// CustomID maps a request attempt to a JSONL custom_id: short, [a-z0-9-], unique within a file.
func CustomID(requestID string, attempt int) string {
	return requestID + "-" + strconv.Itoa(attempt)
}

// ParseCustomID splits a custom_id into request id and attempt.
func ParseCustomID(customID string) (string, int, error) {
	i := strings.LastIndexByte(customID, '-')
	if i <= 0 || i == len(customID)-1 {
		return "", 0, fmt.Errorf("custom_id %q: want <request id>-<attempt>", customID)
	}
	n, err := strconv.Atoi(customID[i+1:])
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("custom_id %q: attempt is not a positive number", customID)
	}
	id := customID[:i]
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "", 0, fmt.Errorf("custom_id %q: request id has %q", customID, r)
		}
	}
	return id, n, nil
}
