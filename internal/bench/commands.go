package bench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"go.mongodb.org/mongo-driver/v2/event"
)

// Command is one command the driver sent: one round trip to the server.
type Command struct {
	Name       string // insert, update, delete, find, getMore, aggregate, findAndModify, ...
	Collection string
	// Statements is the number of write statements of an insert, update or delete command (0 otherwise).
	Statements int
	// Sliced marks an update of one multi-document statement whose filter selects ids with $in: a slice of
	// Store.UpdateMany on FerretDB, which reads the matching ids first (a find projecting _id alone) and
	// updates them MaxBulk at a time.
	Sliced bool
	// IDProjection marks a find projecting _id alone.
	IDProjection bool
	// Renewal marks a lease renewal (an update of lease_until alone, filtered on lease_owner): the builder and
	// the applier renew their lease every 10 s while they work, so these grow with the time a step takes
	// on the server, not with its size.
	Renewal bool
	// ReplyBytes is the size of the server's reply (0 until it answers).
	ReplyBytes int
}

// IsBulk reports a write command, the kind Store.BulkWrite splits at MaxBulk statements.
func (c Command) IsBulk() bool {
	return c.Name == "insert" || c.Name == "update" || c.Name == "delete"
}

// Commands counts what a mongo.Client sends, through the driver's command monitor
// (event.CommandMonitor): every command is a round trip. Server monitoring (heartbeats) and connection
// handshakes do not go through the command monitor and are not counted; endSessions at disconnect is left out.
type Commands struct {
	mu      sync.Mutex
	list    []Command
	pending map[int64]int // request id -> index in list, until the reply
}

// Monitor returns the monitor to give the client (options.Client().SetMonitor).
func (c *Commands) Monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Succeeded: c.succeeded, Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "endSessions" {
			return
		}
		cmd := Command{Name: e.CommandName}
		if v, err := e.Command.LookupErr(e.CommandName); err == nil {
			if s, ok := v.StringValueOK(); ok {
				cmd.Collection = s
			}
		}
		if e.CommandName == "getMore" {
			if s, ok := e.Command.Lookup("collection").StringValueOK(); ok {
				cmd.Collection = s
			}
		}
		if field := statementField(e.CommandName); field != "" {
			if arr, ok := e.Command.Lookup(field).ArrayOK(); ok {
				vals, _ := arr.Values()
				cmd.Statements = len(vals)
				if e.CommandName == "update" && len(vals) == 1 {
					if st, ok := vals[0].DocumentOK(); ok {
						multi, _ := st.Lookup("multi").BooleanOK()
						q, _ := st.Lookup("q").DocumentOK()
						cmd.Sliced = multi && idIn(q)
						set, _ := st.Lookup("u", "$set").DocumentOK()
						elems, _ := set.Elements()
						if len(elems) == 1 && elems[0].Key() == "lease_until" && q.Lookup("lease_owner").Type != 0 {
							cmd.Renewal = true
						}
					}
				}
			}
		}
		if e.CommandName == "find" {
			if p, ok := e.Command.Lookup("projection").DocumentOK(); ok {
				elems, _ := p.Elements()
				cmd.IDProjection = len(elems) == 1 && elems[0].Key() == "_id"
			}
		}
		c.mu.Lock()
		if c.pending == nil {
			c.pending = map[int64]int{}
		}
		c.pending[e.RequestID] = len(c.list)
		c.list = append(c.list, cmd)
		c.mu.Unlock()
	}}
}

func (c *Commands) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.pending[e.RequestID]; ok {
		delete(c.pending, e.RequestID)
		if i < len(c.list) {
			c.list[i].ReplyBytes = len(e.Reply)
		}
	}
}

// idIn reports a filter that selects _id with $in, at its top level or inside a top-level $and.
func idIn(q bson.Raw) bool {
	if q == nil {
		return false
	}
	if d, ok := q.Lookup("_id").DocumentOK(); ok && d.Lookup("$in").Type != 0 {
		return true
	}
	if arr, ok := q.Lookup("$and").ArrayOK(); ok {
		vals, _ := arr.Values()
		for _, v := range vals {
			if d, ok := v.DocumentOK(); ok && idIn(d) {
				return true
			}
		}
	}
	return false
}

func statementField(name string) string {
	switch name {
	case "insert":
		return "documents"
	case "update":
		return "updates"
	case "delete":
		return "deletes"
	}
	return ""
}

// Take returns the commands counted since the last Take and starts a new count.
func (c *Commands) Take() []Command {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.list
	c.list = nil
	c.pending = nil
	return out
}

// BulkCall is one Store.BulkWrite call (or one single write) as seen on the wire.
type BulkCall struct {
	Name, Collection string
	Statements       int
	Commands         int
}

// GroupBulk rebuilds, from the commands of a run made with Store.MaxBulk = maxBulk, the write calls that
// produced them: Store.BulkWrite sends ceil(n/maxBulk) commands for n statements, every one but the last
// full, so a write command continues the previous call when that call's last command was a full one of the
// same kind on the same collection. (Two calls that happen to follow each other, the first of an exact
// multiple of maxBulk statements, would be merged; comparing two runs with different maxBulk shows that it
// did not happen: they must give the same calls.)
func GroupBulk(cmds []Command, maxBulk int) []BulkCall {
	var out []BulkCall
	lastFull := false
	for _, c := range cmds {
		if !c.IsBulk() {
			lastFull = false
			continue
		}
		if n := len(out); n > 0 && lastFull && out[n-1].Name == c.Name && out[n-1].Collection == c.Collection {
			out[n-1].Statements += c.Statements
			out[n-1].Commands++
		} else {
			out = append(out, BulkCall{Name: c.Name, Collection: c.Collection, Statements: c.Statements, Commands: 1})
		}
		lastFull = c.Statements == maxBulk
	}
	return out
}

// Tally is the round trips of a run, and what they would be on MongoDB.
type Tally struct {
	Total int            // every command
	Bulk  int            // write commands (insert, update, delete)
	Other int            // reads and single-document commands
	ByKey map[string]int // "name collection" -> commands
	Calls []BulkCall     // write calls rebuilt with GroupBulk
	// Renewals counts lease renewals (part of Total and Bulk); At leaves them out.
	Renewals int
	cmds     []Command
	max      int
}

// NewTally counts cmds, made with Store.MaxBulk = maxBulk.
func NewTally(cmds []Command, maxBulk int) Tally {
	t := Tally{ByKey: map[string]int{}, cmds: cmds, max: maxBulk}
	for _, c := range cmds {
		t.Total++
		if c.IsBulk() {
			t.Bulk++
		} else {
			t.Other++
		}
		t.ByKey[strings.TrimSpace(c.Name+" "+c.Collection)]++
		if c.Renewal {
			t.Renewals++
		}
	}
	for _, coll := range collections(cmds) {
		_, calls := rebuild(ofCollection(cmds, coll), maxBulk)
		t.Calls = append(t.Calls, calls...)
	}
	return t
}

func collections(cmds []Command) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cmds {
		if !seen[c.Collection] {
			seen[c.Collection] = true
			out = append(out, c.Collection)
		}
	}
	return out
}

func ofCollection(cmds []Command, coll string) []Command {
	var out []Command
	for _, c := range cmds {
		if c.Collection == coll {
			out = append(out, c)
		}
	}
	return out
}

// rebuild walks one collection's commands (in order; commands on other collections, such as a lease
// renewal running alongside, are left out) and returns the commands that are not part of a write call, and
// the write calls. A sliced Store.UpdateMany (a find projecting _id, its getMores, then its sliced updates)
// is one call of one statement: on MongoDB it is a single update command. Lease renewals are skipped.
func rebuild(cmds []Command, maxBulk int) (other int, calls []BulkCall) {
	var bulk []Command
	flush := func() {
		calls = append(calls, GroupBulk(bulk, maxBulk)...)
		bulk = nil
	}
	for i := 0; i < len(cmds); {
		c := cmds[i]
		if c.Renewal {
			i++
			continue
		}
		if c.Name == "find" && c.IDProjection {
			j := i + 1
			for j < len(cmds) && cmds[j].Name == "getMore" {
				j++
			}
			k := j
			for k < len(cmds) && cmds[k].Name == "update" && cmds[k].Sliced {
				k++
			}
			if k > j {
				flush()
				calls = append(calls, BulkCall{Name: "update", Collection: c.Collection, Statements: 1, Commands: k - i})
				i = k
				continue
			}
		}
		if c.Name == "find" || c.Name == "aggregate" {
			// A cursor: MongoDB sends the first batch (101 documents unless a batch size is set, as FerretDB
			// does) and then up to 16 MiB per getMore, where FerretDB's getMores may carry fewer documents.
			j := i + 1
			var more int
			for j < len(cmds) && cmds[j].Name == "getMore" {
				more += cmds[j].ReplyBytes
				j++
			}
			flush()
			other++
			if j > i+1 {
				other += max(1, (more+mongoGetMoreBytes-1)/mongoGetMoreBytes)
			}
			i = j
			continue
		}
		if c.IsBulk() {
			bulk = append(bulk, c)
		} else {
			flush()
			other++
		}
		i++
	}
	flush()
	return other, calls
}

// mongoGetMoreBytes is what MongoDB returns at most per getMore without a batch size.
const mongoGetMoreBytes = 16 << 20

// At returns the commands the same run sends on MongoDB when Store.BulkWrite splits at maxBulk: each write
// call of n statements costs ceil(n/maxBulk); a sliced Store.UpdateMany is one update command (no find, no
// slices); a cursor's getMores are as many as its getMore replies need at MongoDB's 16 MiB each (FerretDB
// answers a getMore with fewer documents); other commands are the same; lease renewals are left out (they
// follow the step's duration, which is FerretDB's speed here; Tally.Renewals counts them).
func (t Tally) At(maxBulk int) int {
	n := 0
	for _, coll := range collections(t.cmds) {
		other, calls := rebuild(ofCollection(t.cmds, coll), t.max)
		n += other
		for _, c := range calls {
			n += max(1, (c.Statements+maxBulk-1)/maxBulk)
		}
	}
	return n
}

// CallSignature lists the write calls as "name collection statements" in order, to compare two runs.
func (t Tally) CallSignature() []string {
	out := make([]string, len(t.Calls))
	for i, c := range t.Calls {
		out[i] = fmt.Sprintf("%s %s %d", c.Name, c.Collection, c.Statements)
	}
	return out
}

// Breakdown formats ByKey, most frequent first.
func (t Tally) Breakdown() string {
	keys := make([]string, 0, len(t.ByKey))
	for k := range t.ByKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if t.ByKey[keys[i]] != t.ByKey[keys[j]] {
			return t.ByKey[keys[i]] > t.ByKey[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, t.ByKey[k])
	}
	return strings.Join(parts, " ")
}

// SameCalls reports whether two tallies rebuilt the same write calls (in any order).
func SameCalls(a, b Tally) bool {
	x, y := a.CallSignature(), b.CallSignature()
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
