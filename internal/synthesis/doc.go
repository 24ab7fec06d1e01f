// Package synthesis is the component catalog: for each Floridify component, its prompt rule, its strict JSON
// schema, how its answer is validated and normalised, and where and how it is applied. The catalog is one table
// (catalog.go); rendering (render.go), result decoding (result.go) and applying (apply.go) are generic over it,
// so adding a component means adding one row.
//
// Request modes: per-component (one request per definition and component), packed (one request per
// definition carrying every missing component) and packed-word (one request per word covering all its
// definitions). All modes decode into the same Result and write identical shapes.
package synthesis
