package synthesis

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

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
	ID           store.ObjectID
	PartOfSpeech string
	Text         string
	Counts       Counts
}

// Target is what one request asks about: one definition (Kind definition) or a word with its
// definitions (Kind word), and the components wanted.
type Target struct {
	Kind       string
	WordID     store.ObjectID
	Word       string
	Language   string
	Defs       []DefRef
	Components []string
	// WordCounts are the counts of word-level components (facts).
	WordCounts Counts
	// Gloss is the word's first sense, shown to word-level components when no sense is listed (the word
	// alone is ambiguous: "lead" the metal or the verb).
	Gloss *DefRef
	// Sources are other providers' etymology texts, shown when etymology is asked.
	Sources []string
}

// Rendered is a request body ready for a JSONL line.
type Rendered struct {
	Body []byte
	Hash string
	// InputTokens counts what is uploaded with o200k_base: the developer message, the user message and the
	// response schema as they appear in Body, plus chat framing (see framingTokens).
	InputTokens int64
	// StaticTokens is the part of InputTokens that is the same for every request of this kind and component
	// set (the developer message, the schema and the first message's framing): the prefix prompt caching can
	// serve.
	StaticTokens int64
	// OutputTokens is the modelled completion (Component.OutputTokens plus JSON keys and punctuation).
	OutputTokens int64
	// Parts attributes InputTokens and OutputTokens to the request's components; they add up exactly.
	Parts []Part
}

// Part is one component's share of a request's tokens. A component's own tokens are its rule line, its
// schema and its JSON keys (input) and its modelled value (output); the shared rest (the header, the word
// and sense text, framing, punctuation) is split in proportion to them.
type Part struct {
	Component    string
	InputTokens  int64
	OutputTokens int64
}

// maxTextLen bounds sense text inside a prompt, as Floridify truncates its inputs to 500 characters.
const maxTextLen = 500

// maxSources and maxSourceLen bound the etymology texts of other providers shown to the model.
const (
	maxSources   = 3
	maxSourceLen = 300
)

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

// Chat framing, by the rule of OpenAI's cookbook (num_tokens_from_messages): every message costs 3 tokens
// plus its role, and 3 more prime the reply.
const replyPriming = 3

func messageFraming(role string) int64 { return 3 + CountTokens(role) }

// static is the part of a request that depends only on the kind, the number of listed senses and the
// component set: rendered once, and placed first in the body so that prompt caching can apply.
type static struct {
	developer    string
	schema       map[string]any
	schemaTokens int64
	devTokens    int64
	temperature  float64
	// own are each component's own input tokens (rule line, value schema, key), for Parts.
	own map[string]int64
	// keys are the tokens of each component's JSON key in the answer ("name":).
	keys       map[string]int64
	sensesKey  int64
	hasDef     bool
	hasCounted bool
}

var staticCache sync.Map // key kind|senses|components -> *static

func staticFor(kind string, nSenses int, comps []*Component) (*static, error) {
	names := make([]string, len(comps))
	for i, c := range comps {
		names[i] = c.Name
	}
	key := kind + "|" + strconv.Itoa(nSenses) + "|" + strings.Join(names, ",")
	if v, ok := staticCache.Load(key); ok {
		return v.(*static), nil
	}
	s := &static{own: map[string]int64{}, keys: map[string]int64{}}
	var defProps, topProps orderedProps
	for _, c := range comps {
		s.hasCounted = s.hasCounted || c.CountOf != nil
		if c.Level == WordLevel {
			topProps.add(c.Name, c.Schema)
			continue
		}
		s.hasDef = true
		defProps.add(c.Name, c.Schema)
	}
	var b strings.Builder
	switch {
	case kind == store.TargetWord && s.hasDef:
		b.WriteString("Enrich a dictionary headword and each numbered sense. Reply in JSON; \"senses\" has one entry per sense, in order.")
	case kind == store.TargetWord:
		b.WriteString("Enrich a dictionary headword. Reply in JSON.")
	default:
		b.WriteString("Enrich one sense of a dictionary headword. Reply in JSON.")
	}
	if s.hasCounted {
		b.WriteString(" N: counts to give.")
	}
	for _, c := range comps {
		b.WriteString("\n- ")
		b.WriteString(c.Rule)
		s.temperature = max(s.temperature, c.Temperature)
	}
	s.developer = b.String()
	switch {
	case kind == store.TargetWord && s.hasDef:
		var top orderedProps
		top.add("senses", map[string]any{"type": "array", "items": defProps.schema(), "minItems": nSenses, "maxItems": nSenses})
		for i, k := range topProps.keys {
			top.add(k, topProps.vals[i])
		}
		s.schema = top.schema()
	case kind == store.TargetWord:
		s.schema = topProps.schema()
	default:
		s.schema = defProps.schema()
	}
	sj, err := marshalJSON(s.schema)
	if err != nil {
		return nil, fmt.Errorf("error encoding schema: %w", err)
	}
	s.schemaTokens = CountTokens(string(sj))
	s.devTokens = CountTokens(s.developer)
	s.sensesKey = CountTokens(`"senses":`)
	for _, c := range comps {
		vj, err := marshalJSON(c.Schema)
		if err != nil {
			return nil, fmt.Errorf("error encoding schema of %s: %w", c.Name, err)
		}
		s.keys[c.Name] = CountTokens(`"` + c.Name + `":`)
		s.own[c.Name] = CountTokens("- "+c.Rule) + CountTokens(string(vj)) + s.keys[c.Name]
	}
	v, _ := staticCache.LoadOrStore(key, s)
	return v.(*static), nil
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
	hasDef := false
	for _, c := range comps {
		if c.Level == DefinitionLevel {
			hasDef = true
		}
	}
	switch t.Kind {
	case store.TargetDefinition:
		if len(t.Defs) != 1 {
			return Rendered{}, fmt.Errorf("a definition request needs exactly one definition, got %d", len(t.Defs))
		}
		for _, c := range comps {
			if c.Level == WordLevel {
				return Rendered{}, fmt.Errorf("component %s is asked per word, not in a definition request", c.Name)
			}
		}
	case store.TargetWord:
		if hasDef && len(t.Defs) == 0 {
			return Rendered{}, fmt.Errorf("a word request for definition components needs its definitions")
		}
	default:
		return Rendered{}, fmt.Errorf("unknown request kind %q", t.Kind)
	}
	nSenses := 0
	if t.Kind == store.TargetWord && hasDef {
		nSenses = len(t.Defs)
	}
	st, err := staticFor(t.Kind, nSenses, comps)
	if err != nil {
		return Rendered{}, err
	}
	user := userMessage(t, comps, hasDef)

	// Modelled output, per component: its key and value for every sense (or once for a word component).
	outOwn := make(map[string]int64, len(comps))
	var out int64 = 3 // braces and the end of the message
	for _, c := range comps {
		if c.Level == WordLevel {
			outOwn[c.Name] = st.keys[c.Name] + int64(c.OutputTokens(t.WordCounts))
			continue
		}
		for _, d := range t.Defs {
			outOwn[c.Name] += st.keys[c.Name] + int64(c.OutputTokens(d.Counts))
		}
	}
	if nSenses > 0 {
		out += st.sensesKey + int64(2*nSenses)
	}
	for _, v := range outOwn {
		out += v
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
		temp := st.temperature
		bd.Temperature = &temp
	}
	bd.Messages = []message{{Role: role, Content: st.developer}, {Role: "user", Content: user}}
	raw, err := marshalJSON(bd)
	if err != nil {
		return Rendered{}, fmt.Errorf("error encoding body: %w", err)
	}
	sum := sha256.Sum256(raw)
	static := st.devTokens + st.schemaTokens + messageFraming(role)
	in := static + CountTokens(user) + messageFraming("user") + replyPriming
	r := Rendered{Body: raw, Hash: hex.EncodeToString(sum[:16]), InputTokens: in, StaticTokens: static, OutputTokens: out}
	inW := make([]int64, len(comps))
	outW := make([]int64, len(comps))
	for i, c := range comps {
		inW[i] = st.own[c.Name]
		outW[i] = outOwn[c.Name]
	}
	inShare, outShare := split(in, inW), split(out, outW)
	for i, c := range comps {
		r.Parts = append(r.Parts, Part{Component: c.Name, InputTokens: inShare[i], OutputTokens: outShare[i]})
	}
	return r, nil
}

// split divides total in proportion to weights (largest remainder), so the shares add up to total exactly.
func split(total int64, weights []int64) []int64 {
	out := make([]int64, len(weights))
	var sum int64
	for _, w := range weights {
		sum += w
	}
	if len(weights) == 0 {
		return out
	}
	if sum == 0 {
		for i := range weights {
			weights[i] = 1
		}
		sum = int64(len(weights))
	}
	type rem struct {
		i int
		r int64
	}
	rems := make([]rem, len(weights))
	var given int64
	for i, w := range weights {
		out[i] = total * w / sum
		given += out[i]
		rems[i] = rem{i, total * w % sum}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; given < total; k++ {
		out[rems[k%len(rems)].i]++
		given++
	}
	return out
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

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func countsText(comps []*Component, level Level, c Counts) string {
	var parts []string
	for _, comp := range comps {
		if comp.Level == level && comp.CountOf != nil {
			parts = append(parts, comp.Name+" "+strconv.Itoa(comp.CountOf(c)))
		}
	}
	return strings.Join(parts, ", ")
}

func userMessage(t Target, comps []*Component, hasDef bool) string {
	var b strings.Builder
	b.WriteString("word: ")
	b.WriteString(clip(t.Word, maxTextLen))
	if t.Language != "" && t.Language != "en" {
		b.WriteString("\nlanguage: ")
		b.WriteString(t.Language)
	}
	if t.Kind == store.TargetDefinition {
		d := t.Defs[0]
		b.WriteString("\npos: ")
		b.WriteString(d.PartOfSpeech)
		b.WriteString("\ndefinition: ")
		b.WriteString(clip(d.Text, maxTextLen))
		if ct := countsText(comps, DefinitionLevel, d.Counts); ct != "" {
			b.WriteString("\nN: ")
			b.WriteString(ct)
		}
		return b.String()
	}
	if ct := countsText(comps, WordLevel, t.WordCounts); ct != "" {
		b.WriteString("\nN: ")
		b.WriteString(ct)
	}
	asked := func(name string) bool { return slices.Contains(t.Components, name) }
	if asked("etymology") && len(t.Sources) > 0 {
		b.WriteString("\netymology notes from other dictionaries:")
		for _, s := range t.Sources[:min(len(t.Sources), maxSources)] {
			b.WriteString("\n- ")
			b.WriteString(clip(s, maxSourceLen))
		}
	}
	if !hasDef {
		if t.Gloss != nil {
			b.WriteString("\nmain sense: (")
			b.WriteString(t.Gloss.PartOfSpeech)
			b.WriteString(") ")
			b.WriteString(clip(t.Gloss.Text, maxTextLen))
		}
		return b.String()
	}
	b.WriteString("\nsenses:")
	for i, d := range t.Defs {
		b.WriteString("\n")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". (")
		b.WriteString(d.PartOfSpeech)
		b.WriteString(") ")
		b.WriteString(clip(d.Text, maxTextLen))
		if ct := countsText(comps, DefinitionLevel, d.Counts); ct != "" {
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
func RequestKey(kind string, defIDs []store.ObjectID, wordID store.ObjectID, comps []string, model, mode, nonce string) string {
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
