// Package synthesis is the component catalog: for each Floridify component, its prompt rule, its strict JSON
// schema, how its answer is validated and normalised, and where and how it is applied. The catalog is one table
// (catalog.go); rendering (render.go), planning (plan.go), decoding and applying (apply.go) are generic over it,
// so adding a component means adding one row.
//
// # Components
//
// Per definition: synonyms, examples, antonyms, cefr_level, frequency_band, register, domain,
// grammar_patterns, collocations, usage_notes, regional_variants, and word_forms. Per word: pronunciation,
// etymology, facts. "all" is every one; "default" is Floridify's default_components() at HEAD (its default
// definition components plus pronunciation and etymology).
//
// A definition component is missing when Floridify's field is empty (an empty list, null, ""), as Floridify
// decides; a word component is missing when the word's synthesis entry lacks it: no pronunciation_id naming an
// existing pronunciation, no etymology text, no existing fact among fact_ids. The pipeline loads that state per
// chunk of words; offline, everything is missing.
//
// Floridify asks for an etymology only when some provider has one, and passes those texts in; we give other
// providers' etymologies to the model when there are any, but ask regardless: a batch run typically enriches
// words no provider has described.
//
// word_forms is listed among Floridify's word-level components, but Floridify asks it with the part of speech
// and stores the answer on every Definition.word_forms; here it is a definition-level component, so its Missing
// rule (an empty list), its apply rule and every request mode work per definition.
//
// Where results land (docs/floridify.md): definition fields are $set on the definition
// (register as language_register; regional_variants as region, the single value Floridify keeps of its list;
// word forms as {form_type, text}; collocations as {text, type, frequency}; grammar patterns as
// {pattern, description}; usage notes as {type, text}); examples are Example documents linked through
// example_ids; a pronunciation is a Pronunciation document linked by the word's synthesis DictionaryEntry
// (provider "synthesis") through pronunciation_id; facts are Fact documents linked through fact_ids; the
// etymology is embedded in that entry. Every document created has a deterministic _id (ExampleID,
// PronunciationID, FactID; EntryID for a new entry), so applying an answer twice writes the same documents.
//
// # Mappings onto Floridify's enums (enums.go)
//
//   - register: Floridify's prompt offers "literary", its field cannot hold it: literary is stored as formal.
//   - frequency_band: the model answers on corpus-rank bands (1 = the 1,000 commonest words, 5 = rarer than
//     10,000), the scale of Floridify's AI prompt; the stored band is 6 minus that, so 5 = most common, the
//     direction of Floridify's local (wordfreq) path and of its band-to-CEFR table.
//   - word_forms: the schema offers the seven stored types; known aliases map onto them (gerund ->
//     present_participle, past_tense -> past, spelling_variant -> variant ...); forms Floridify's prompt asks for
//     but cannot store (third_person_singular, possessive, agent_noun, adverb) are left out.
//   - usage_notes: the five stored types; aliases (spelling, mistake -> error; style, formality -> register;
//     dialect -> regional; confusable -> confusion; grammatical -> grammar).
//   - facts: Floridify's own mapping: general -> usage, technical and scientific -> linguistic, anything else
//     -> usage.
//   - regional_variants: the eight codes (GB -> UK, USA -> US); null for a universal sense.
//   - domain: Floridify's twenty fields, a few aliases (medicine -> medical ...); null for a general sense.
//
// Any other value fails the whole attempt with a reason naming it: nothing of that request is written.
//
// # Request modes
//
// per-component (one request per definition and component, and per word component), packed (the default: one
// request per definition carrying every missing definition component, plus one request per word for its word
// components) and packed-word (one request per word covering all its definitions and its word components). All
// modes decode into the same Parsed value and write identical shapes.
//
// # Model routing
//
// A job's model is used for every request, unless it is "auto" (ModelAuto): then each component goes to its
// tier's model (routing.go; classifications on gpt-5-nano, generation on gpt-5-mini, as Floridify routes its
// LOW and MEDIUM tiers), and packed requests split by model. Each planned request carries its model; the
// builder fills every input file with one model's requests.
//
// # Token counts
//
// Render counts the input tokens of a body with tiktoken's o200k_base: the developer (or system) message, the
// user message and the response schema as uploaded, plus chat framing: 3 tokens per message and its role, and
// 3 that prime the reply (OpenAI's num_tokens_from_messages rule). Output tokens are modelled per component
// (Component.OutputTokens, calibrated with o200k_base on typical answers) plus each JSON key and the object
// punctuation. Rendered.Parts splits both over the request's components in proportion to their own share.
package synthesis
