package bench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
)

// Command is one command the driver sent: one round trip to the server.
type Command struct {
	Name       string // insert, update, delete, find, getMore, aggregate, findAndModify, ...
	Collection string
	// Statements is the number of write statements of an insert, update or delete command (0 otherwise).
	Statements int
}

// IsBulk reports a write command, the kind Store.BulkWrite splits at MaxBulk statements.
func (c Command) IsBulk() bool {
	return c.Name == "insert" || c.Name == "update" || c.Name == "delete"
}

// Commands counts what a mongo.Client sends, through the driver's command monitor
// (event.CommandMonitor): every command is a round trip. Server monitoring (heartbeats) and connection
// handshakes do not go through the command monitor and are not counted; endSessions at disconnect is left out.
type Commands struct {
	mu   sync.Mutex
	list []Command
}

// Monitor returns the monitor to give the client (options.Client().SetMonitor).
func (c *Commands) Monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
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
			}
		}
		c.mu.Lock()
		c.list = append(c.list, cmd)
		c.mu.Unlock()
	}}
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

// Tally is the round trips of a run, and what they would be with another bulk size.
type Tally struct {
	Total int            // every command
	Bulk  int            // write commands (insert, update, delete)
	Other int            // reads and single-document commands
	ByKey map[string]int // "name collection" -> commands
	Calls []BulkCall     // write calls rebuilt with GroupBulk
}

// NewTally counts cmds, made with Store.MaxBulk = maxBulk.
func NewTally(cmds []Command, maxBulk int) Tally {
	t := Tally{ByKey: map[string]int{}, Calls: GroupBulk(cmds, maxBulk)}
	for _, c := range cmds {
		t.Total++
		if c.IsBulk() {
			t.Bulk++
		} else {
			t.Other++
		}
		t.ByKey[strings.TrimSpace(c.Name+" "+c.Collection)]++
	}
	return t
}

// At returns the commands the same run sends when Store.BulkWrite splits at maxBulk instead: the reads are
// the same, each write call of n statements costs ceil(n/maxBulk).
func (t Tally) At(maxBulk int) int {
	n := t.Other
	for _, c := range t.Calls {
		n += max(1, (c.Statements+maxBulk-1)/maxBulk)
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

// SameCalls reports whether two tallies rebuilt the same write calls (up to statement order within a call,
// which does not change counts).
func SameCalls(a, b Tally) bool {
	x, y := a.CallSignature(), b.CallSignature()
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
