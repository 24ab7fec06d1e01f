package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The schema support covers what strict structured outputs allow: object
// (properties, required, additionalProperties), array (items, prefixItems,
// minItems, maxItems, uniqueItems), string (enum, const, minLength, maxLength,
// pattern, format), integer and number (minimum, maximum, exclusive bounds,
// multipleOf, enum), boolean, null, type arrays such as ["string","null"],
// anyOf, oneOf, allOf and local $ref ("#/$defs/…", "#/definitions/…", "#").

const maxSchemaDepth = 64

// deepSchema is the nesting depth from which the generator takes the shortest
// way out of recursive schemas: null where allowed, minItems items.
const deepSchema = 10

// generateValue returns a value valid for schema, deterministic for rng's state.
// Strings read as plainly synthetic text mentioning word.
func generateValue(schema any, word string, rng *rand.Rand) any {
	g := &generator{root: schema, word: word, rng: rng}
	return g.gen(schema, "", 1, 0)
}

type generator struct {
	root any
	word string
	rng  *rand.Rand
}

func (g *generator) gen(schema any, label string, idx, depth int) any {
	m, ok := schema.(map[string]any)
	if !ok || depth > maxSchemaDepth {
		return g.text(label, idx, nil)
	}
	if ref, ok := m["$ref"].(string); ok {
		if target, ok := resolveRef(g.root, ref); ok {
			return g.gen(target, label, idx, depth+1)
		}
		return nil
	}
	if c, ok := m["const"]; ok {
		return c
	}
	if depth >= deepSchema && allowsNull(m) {
		return nil
	}
	if enum, ok := m["enum"].([]any); ok && len(enum) > 0 {
		vals := slices.DeleteFunc(slices.Clone(enum), func(v any) bool { return v == nil })
		if len(vals) == 0 {
			return nil
		}
		return vals[g.rng.IntN(len(vals))]
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if branches, ok := m[key].([]any); ok && len(branches) > 0 {
			vals := slices.DeleteFunc(slices.Clone(branches), func(b any) bool { return isNullSchema(b) })
			if len(vals) == 0 {
				return nil
			}
			return g.gen(vals[g.rng.IntN(len(vals))], label, idx, depth+1)
		}
	}
	if all, ok := m["allOf"].([]any); ok && len(all) > 0 {
		return g.gen(mergeAllOf(g.root, m, all), label, idx, depth+1)
	}

	switch schemaType(m) {
	case "object":
		return g.object(m, label, idx, depth)
	case "array":
		return g.array(m, label, depth)
	case "integer":
		return g.integer(m)
	case "number":
		return g.number(m)
	case "boolean":
		return g.rng.IntN(2) == 0
	case "null":
		return nil
	default:
		return g.text(label, idx, m)
	}
}

func (g *generator) object(m map[string]any, label string, idx, depth int) any {
	props, _ := m["properties"].(map[string]any)
	out := make(map[string]any, len(props))
	for _, k := range slices.Sorted(maps.Keys(props)) {
		out[k] = g.gen(props[k], k, idx, depth+1)
	}
	// Required names without a schema (not valid in strict mode) get text.
	if req, ok := m["required"].([]any); ok && m["additionalProperties"] != false {
		for _, r := range req {
			if k, ok := r.(string); ok {
				if _, done := out[k]; !done {
					out[k] = g.text(k, idx, nil)
				}
			}
		}
	}
	return out
}

func (g *generator) array(m map[string]any, label string, depth int) any {
	minItems, hasMin := intKeyword(m, "minItems")
	maxItems, hasMax := intKeyword(m, "maxItems")
	if !hasMin {
		minItems = 0
	}
	if !hasMax {
		maxItems = math.MaxInt32
	}
	lo := min(max(2, minItems), maxItems)
	hi := min(max(3, minItems), maxItems)
	if depth >= deepSchema {
		lo, hi = minItems, minItems
	}
	n := lo
	if hi > lo {
		n += g.rng.IntN(hi - lo + 1)
	}
	prefix, _ := m["prefixItems"].([]any)
	items, hasItems := m["items"]
	if !hasItems && len(prefix) == 0 {
		items = map[string]any{"type": "string"}
	}
	unique := m["uniqueItems"] == true
	if enum := g.enumOf(items); unique && len(prefix) == 0 && len(enum) > 0 {
		// Distinct enum values: a prefix of a permutation.
		perm := slices.Clone(enum)
		g.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		return perm[:min(n, len(perm))]
	}
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		s := items
		if i < len(prefix) {
			s = prefix[i]
		}
		v := g.gen(s, label, i+1, depth+1)
		for try := 0; unique && try < 10 && containsJSON(out, v); try++ {
			v = g.gen(s, label, i+1+try*n, depth+1)
		}
		if unique && containsJSON(out, v) {
			if len(out) >= minItems {
				break
			}
		}
		out = append(out, v)
	}
	return out
}

// enumOf returns the enum of schema (following $ref), nil when it has none.
func (g *generator) enumOf(schema any) []any {
	m, _ := schema.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		target, _ := resolveRef(g.root, ref)
		m, _ = target.(map[string]any)
	}
	enum, _ := m["enum"].([]any)
	return enum
}

func (g *generator) integer(m map[string]any) any {
	lo, hi := bounds(m, true)
	hi = min(hi, lo+1e6) // keep the draw in range for huge spans
	v := lo
	if hi > lo {
		v += float64(g.rng.Int64N(int64(hi-lo) + 1))
	}
	if mult, ok := numKeyword(m, "multipleOf"); ok && mult > 0 {
		if c := math.Ceil(v/mult) * mult; c <= hi {
			v = c
		} else if f := math.Floor(v/mult) * mult; f >= lo {
			v = f
		}
	}
	return int64(v)
}

func (g *generator) number(m map[string]any) any {
	lo, hi := bounds(m, false)
	v := lo + g.rng.Float64()*(hi-lo)
	if r := math.Round(v*100) / 100; r >= lo && r <= hi {
		v = r
	}
	if mult, ok := numKeyword(m, "multipleOf"); ok && mult > 0 {
		if c := math.Ceil(lo/mult) * mult; c <= hi {
			v = c
		}
	}
	return v
}

// bounds returns the inclusive range to draw a number from.
func bounds(m map[string]any, integer bool) (lo, hi float64) {
	lo, hasLo := numKeyword(m, "minimum")
	hi, hasHi := numKeyword(m, "maximum")
	step := 1.0
	if !integer {
		step = 0.01
	}
	if v, ok := numKeyword(m, "exclusiveMinimum"); ok && (!hasLo || v >= lo) {
		lo, hasLo = v+step, true
	} else if m["exclusiveMinimum"] == true && hasLo { // draft 4
		lo += step
	}
	if v, ok := numKeyword(m, "exclusiveMaximum"); ok && (!hasHi || v <= hi) {
		hi, hasHi = v-step, true
	} else if m["exclusiveMaximum"] == true && hasHi {
		hi -= step
	}
	switch {
	case !hasLo && !hasHi:
		lo, hi = 1, 5
		if !integer {
			lo, hi = 0, 1
		}
	case !hasLo:
		lo = hi - 4
	case !hasHi:
		hi = lo + 4
	}
	if integer {
		lo, hi = math.Ceil(lo), math.Floor(hi)
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

var patternCandidates = []string{"synthetic", "a", "A", "x", "0", "1", "42", "abc", "ABC", "a1",
	"2025-01-01", "12:00:00", "synthetic@example.com", "https://example.com", "en", "en-US", "n", "v"}

// text returns a short, plainly synthetic string that satisfies m's string keywords.
func (g *generator) text(label string, idx int, m map[string]any) string {
	if label == "" {
		label = "text"
	}
	s := fmt.Sprintf("synthetic %s %d for %q", strings.ReplaceAll(label, "_", " "), idx, g.word)
	if m == nil {
		return s
	}
	switch m["format"] {
	case "date-time":
		s = "2025-01-01T12:00:00Z"
	case "date":
		s = "2025-01-01"
	case "time":
		s = "12:00:00Z"
	case "duration":
		s = "P1D"
	case "email":
		s = "synthetic@example.com"
	case "hostname":
		s = "synthetic.example.com"
	case "ipv4":
		s = "192.0.2.1"
	case "ipv6":
		s = "2001:db8::1"
	case "uuid":
		h := randHex(g.rng, 32)
		s = h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
	}
	minLen, hasMin := intKeyword(m, "minLength")
	maxLen, hasMax := intKeyword(m, "maxLength")
	fits := func(v string) bool {
		n := utf8.RuneCountInString(v)
		return (!hasMin || n >= minLen) && (!hasMax || n <= maxLen)
	}
	if p, ok := m["pattern"].(string); ok {
		if re, err := regexp.Compile(p); err == nil && !re.MatchString(s) {
			for _, c := range append([]string{g.word}, patternCandidates...) {
				if re.MatchString(c) && fits(c) {
					return c
				}
			}
		}
	}
	for hasMin && utf8.RuneCountInString(s) < minLen {
		s += " synthetic"
	}
	if hasMax && utf8.RuneCountInString(s) > maxLen {
		s = string([]rune(s)[:max(0, maxLen)])
	}
	return s
}

// schemaType returns the type to generate for m: the first non-null entry of
// "type", else one inferred from the keywords present.
func schemaType(m map[string]any) string {
	switch t := m["type"].(type) {
	case string:
		return t
	case []any:
		for _, v := range t {
			if s, ok := v.(string); ok && s != "null" {
				return s
			}
		}
		if len(t) > 0 {
			return "null"
		}
	}
	switch {
	case m["properties"] != nil || m["additionalProperties"] != nil || m["required"] != nil:
		return "object"
	case m["items"] != nil || m["prefixItems"] != nil:
		return "array"
	case m["minimum"] != nil || m["maximum"] != nil:
		return "number"
	}
	return "string"
}

// allowsNull reports whether m accepts null through its type, enum, anyOf or oneOf.
func allowsNull(m map[string]any) bool {
	if t, ok := m["type"].([]any); ok && slices.Contains(t, any("null")) {
		return true
	}
	if e, ok := m["enum"].([]any); ok && slices.Contains(e, nil) {
		return true
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if branches, ok := m[key].([]any); ok && slices.ContainsFunc(branches, isNullSchema) {
			return true
		}
	}
	return isNullSchema(m)
}

func isNullSchema(s any) bool {
	m, ok := s.(map[string]any)
	if !ok {
		return false
	}
	switch t := m["type"].(type) {
	case string:
		return t == "null"
	case []any:
		return len(t) == 1 && t[0] == "null"
	}
	if e, ok := m["enum"].([]any); ok {
		return len(e) == 1 && e[0] == nil
	}
	return false
}

// mergeAllOf folds allOf branches into one schema (properties and required are
// merged; other keywords: the last one wins).
func mergeAllOf(root any, m map[string]any, all []any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "allOf" {
			out[k] = v
		}
	}
	props := map[string]any{}
	if p, ok := m["properties"].(map[string]any); ok {
		maps.Copy(props, p)
	}
	var required []any
	if r, ok := m["required"].([]any); ok {
		required = append(required, r...)
	}
	for _, b := range all {
		bm, ok := b.(map[string]any)
		if ref, isRef := bm["$ref"].(string); ok && isRef {
			if t, found := resolveRef(root, ref); found {
				bm, _ = t.(map[string]any)
			}
		}
		for k, v := range bm {
			switch k {
			case "properties":
				if p, ok := v.(map[string]any); ok {
					maps.Copy(props, p)
				}
			case "required":
				if r, ok := v.([]any); ok {
					required = append(required, r...)
				}
			default:
				out[k] = v
			}
		}
	}
	if len(props) > 0 {
		out["properties"] = props
	}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// resolveRef follows a local JSON pointer ("#", "#/$defs/x", "#/definitions/x").
func resolveRef(root any, ref string) (any, bool) {
	if ref == "#" {
		return root, true
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	cur := root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func numKeyword(m map[string]any, key string) (float64, bool) {
	f, ok := toFloat(m[key])
	return f, ok
}

func intKeyword(m map[string]any, key string) (int, bool) {
	f, ok := toFloat(m[key])
	if !ok {
		return 0, false
	}
	return int(f), true
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// breakValue returns a copy of v, valid JSON, that no longer validates against
// schema: a property removed from an object (a required property, under strict
// schemas) or a string replaced by a value outside its enum. When no such change
// breaks it, it returns a value of the wrong type.
func breakValue(schema, v any, rng *rand.Rand) any {
	v = deepCopy(v)
	type mutation struct{ apply, undo func() }
	var muts []mutation
	var walk func(x any)
	walk = func(x any) {
		switch c := x.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(c)) {
				val := c[k]
				muts = append(muts, mutation{
					apply: func() { delete(c, k) },
					undo:  func() { c[k] = val },
				})
				if _, ok := val.(string); ok {
					muts = append(muts, mutation{
						apply: func() { c[k] = "synthetic value outside the enum" },
						undo:  func() { c[k] = val },
					})
				}
				walk(val)
			}
		case []any:
			for i, val := range c {
				if _, ok := val.(string); ok {
					muts = append(muts, mutation{
						apply: func() { c[i] = "synthetic value outside the enum" },
						undo:  func() { c[i] = val },
					})
				}
				walk(val)
			}
		}
	}
	walk(v)
	rng.Shuffle(len(muts), func(i, j int) { muts[i], muts[j] = muts[j], muts[i] })
	for _, m := range muts {
		m.apply()
		if validate(schema, v) != nil {
			return v
		}
		m.undo()
	}
	for _, alt := range []any{"synthetic value of the wrong type", int64(12345), []any{}, map[string]any{}} {
		if validate(schema, alt) != nil {
			return alt
		}
	}
	return v
}

func deepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(c))
		for k, x := range c {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(c))
		for i, x := range c {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

// ValidateAgainstSchema reports whether value is valid for the JSON schema.
// Either argument may be decoded JSON (map[string]any, []any, string, float64,
// bool, nil), raw JSON ([]byte or json.RawMessage), or any value that
// encoding/json can marshal. The error lists each problem with its JSON path.
// It supports the keywords strict structured outputs use (see the package
// documentation); unknown keywords are ignored.
func ValidateAgainstSchema(schema, value any) error {
	s, err := normalizeJSON(schema)
	if err != nil {
		return fmt.Errorf("error reading schema: %w", err)
	}
	v, err := normalizeJSON(value)
	if err != nil {
		return fmt.Errorf("error reading value: %w", err)
	}
	return validate(s, v)
}

func normalizeJSON(v any) (any, error) {
	var raw []byte
	switch c := v.(type) {
	case json.RawMessage:
		raw = c
	case []byte:
		raw = c
	default:
		if isPlainJSON(v) {
			return v, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func isPlainJSON(v any) bool {
	switch c := v.(type) {
	case nil, bool, string, float64, int64, int, json.Number:
		return true
	case map[string]any:
		for _, x := range c {
			if !isPlainJSON(x) {
				return false
			}
		}
		return true
	case []any:
		for _, x := range c {
			if !isPlainJSON(x) {
				return false
			}
		}
		return true
	}
	return false
}

const maxProblems = 20

type validator struct {
	root     any
	problems []string
}

func validate(schema, v any) error {
	c := &validator{root: schema}
	c.check(schema, v, "$", 0)
	if len(c.problems) == 0 {
		return nil
	}
	errs := make([]error, len(c.problems))
	for i, p := range c.problems {
		errs[i] = errors.New(p)
	}
	return errors.Join(errs...)
}

func (c *validator) fail(path, format string, args ...any) {
	if len(c.problems) < maxProblems {
		c.problems = append(c.problems, path+": "+fmt.Sprintf(format, args...))
	}
}

// valid reports whether v validates against s, without recording problems.
func (c *validator) valid(s, v any, depth int) bool {
	sub := &validator{root: c.root}
	sub.check(s, v, "$", depth)
	return len(sub.problems) == 0
}

func (c *validator) check(schema, v any, path string, depth int) {
	if depth > maxSchemaDepth {
		c.fail(path, "schema nesting is too deep")
		return
	}
	switch s := schema.(type) {
	case nil:
		return
	case bool:
		if !s {
			c.fail(path, "no value is allowed here")
		}
		return
	case map[string]any:
		c.checkObjectSchema(s, v, path, depth)
	default:
		c.fail(path, "schema is not an object or boolean")
	}
}

func (c *validator) checkObjectSchema(s map[string]any, v any, path string, depth int) {
	if ref, ok := s["$ref"].(string); ok {
		target, found := resolveRef(c.root, ref)
		if !found {
			c.fail(path, "cannot resolve $ref %q", ref)
			return
		}
		c.check(target, v, path, depth+1)
	}
	if t, ok := s["type"]; ok && !matchesType(t, v) {
		c.fail(path, "expected type %s, got %s", typeString(t), jsonType(v))
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return jsonEqual(e, v) }) {
		c.fail(path, "value %s is not one of the enum values %s", compact(v), compact(enum))
	}
	if cv, ok := s["const"]; ok && !jsonEqual(cv, v) {
		c.fail(path, "value %s is not the const %s", compact(v), compact(cv))
	}
	if branches, ok := s["anyOf"].([]any); ok {
		if !slices.ContainsFunc(branches, func(b any) bool { return c.valid(b, v, depth+1) }) {
			c.fail(path, "value matches none of anyOf")
		}
	}
	if branches, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, b := range branches {
			if c.valid(b, v, depth+1) {
				n++
			}
		}
		if n != 1 {
			c.fail(path, "value matches %d of oneOf, want exactly 1", n)
		}
	}
	if branches, ok := s["allOf"].([]any); ok {
		for _, b := range branches {
			c.check(b, v, path, depth+1)
		}
	}
	if not, ok := s["not"]; ok && c.valid(not, v, depth+1) {
		c.fail(path, "value must not match the 'not' schema")
	}

	switch x := v.(type) {
	case string:
		c.checkString(s, x, path)
	case map[string]any:
		c.checkObject(s, x, path, depth)
	case []any:
		c.checkArray(s, x, path, depth)
	default:
		if f, ok := toFloat(v); ok {
			c.checkNumber(s, f, path)
		}
	}
}

func (c *validator) checkString(s map[string]any, x, path string) {
	n := utf8.RuneCountInString(x)
	if m, ok := intKeyword(s, "minLength"); ok && n < m {
		c.fail(path, "string is shorter than minLength %d", m)
	}
	if m, ok := intKeyword(s, "maxLength"); ok && n > m {
		c.fail(path, "string is longer than maxLength %d", m)
	}
	if p, ok := s["pattern"].(string); ok {
		if re, err := regexp.Compile(p); err == nil && !re.MatchString(x) {
			c.fail(path, "string %q does not match pattern %q", x, p)
		}
	}
}

func (c *validator) checkNumber(s map[string]any, f float64, path string) {
	if m, ok := numKeyword(s, "minimum"); ok {
		if f < m || (s["exclusiveMinimum"] == true && f == m) {
			c.fail(path, "%g is below the minimum %g", f, m)
		}
	}
	if m, ok := numKeyword(s, "maximum"); ok {
		if f > m || (s["exclusiveMaximum"] == true && f == m) {
			c.fail(path, "%g is above the maximum %g", f, m)
		}
	}
	if m, ok := numKeyword(s, "exclusiveMinimum"); ok && f <= m {
		c.fail(path, "%g is not above the exclusiveMinimum %g", f, m)
	}
	if m, ok := numKeyword(s, "exclusiveMaximum"); ok && f >= m {
		c.fail(path, "%g is not below the exclusiveMaximum %g", f, m)
	}
	if m, ok := numKeyword(s, "multipleOf"); ok && m > 0 {
		q := f / m
		if math.Abs(q-math.Round(q)) > 1e-9*math.Max(1, math.Abs(q)) {
			c.fail(path, "%g is not a multiple of %g", f, m)
		}
	}
}

func (c *validator) checkObject(s map[string]any, x map[string]any, path string, depth int) {
	props, _ := s["properties"].(map[string]any)
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if k, ok := r.(string); ok {
				if _, present := x[k]; !present {
					c.fail(path, "missing required property %q", k)
				}
			}
		}
	}
	if m, ok := intKeyword(s, "minProperties"); ok && len(x) < m {
		c.fail(path, "object has fewer than minProperties %d", m)
	}
	if m, ok := intKeyword(s, "maxProperties"); ok && len(x) > m {
		c.fail(path, "object has more than maxProperties %d", m)
	}
	additional, hasAdditional := s["additionalProperties"]
	for _, k := range slices.Sorted(maps.Keys(x)) {
		sub := path + "." + k
		if ps, ok := props[k]; ok {
			c.check(ps, x[k], sub, depth+1)
			continue
		}
		if hasAdditional {
			if additional == false {
				c.fail(path, "property %q is not allowed (additionalProperties is false)", k)
				continue
			}
			c.check(additional, x[k], sub, depth+1)
		}
	}
}

func (c *validator) checkArray(s map[string]any, x []any, path string, depth int) {
	if m, ok := intKeyword(s, "minItems"); ok && len(x) < m {
		c.fail(path, "array has %d items, fewer than minItems %d", len(x), m)
	}
	if m, ok := intKeyword(s, "maxItems"); ok && len(x) > m {
		c.fail(path, "array has %d items, more than maxItems %d", len(x), m)
	}
	if s["uniqueItems"] == true {
		for i := range x {
			if containsJSON(x[:i], x[i]) {
				c.fail(fmt.Sprintf("%s[%d]", path, i), "duplicate item (uniqueItems)")
			}
		}
	}
	prefix, _ := s["prefixItems"].([]any)
	items, hasItems := s["items"]
	for i, item := range x {
		sub := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case i < len(prefix):
			c.check(prefix[i], item, sub, depth+1)
		case hasItems:
			c.check(items, item, sub, depth+1)
		}
	}
}

func matchesType(t, v any) bool {
	switch tt := t.(type) {
	case string:
		return matchesOne(tt, v)
	case []any:
		for _, e := range tt {
			if s, ok := e.(string); ok && matchesOne(s, v) {
				return true
			}
		}
		return false
	}
	return true
}

func matchesOne(t string, v any) bool {
	switch t {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "number":
		_, ok := toFloat(v)
		return ok
	case "integer":
		f, ok := toFloat(v)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	}
	return false
}

func typeString(t any) string {
	if s, ok := t.(string); ok {
		return s
	}
	return compact(t)
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	if _, ok := toFloat(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func jsonEqual(a, b any) bool {
	fa, aNum := toFloat(a)
	fb, bNum := toFloat(b)
	if aNum || bNum {
		return aNum && bNum && fa == fb
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func containsJSON(list []any, v any) bool {
	return slices.ContainsFunc(list, func(e any) bool { return jsonEqual(e, v) })
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
