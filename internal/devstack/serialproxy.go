package devstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// serialProxy sits in front of FerretDB and forwards every client's wire-protocol messages over a fixed
// number of upstream connections (lanes), one request-reply exchange per lane at a time.
//
// FerretDB v1.24 keeps, for every statement of an update command, the backend connection its query used
// until the whole command ends, and takes one more for each write: a command of n statements holds n+1
// backend connections. Its pools are 100 connections (SQLite) and 50 (PostgreSQL's default pool_max_conns),
// and a command, or several at once, that needs more waits forever. Bounding the exchanges in flight, with
// Store.MaxBulk bounding the statements per command, keeps the need under the pool: one lane on SQLite,
// whose single writer gains nothing from more, and a few on PostgreSQL. Real MongoDB needs none of this.
type serialProxy struct {
	ln       net.Listener
	upstream string
	lanes    chan *lane
	wg       sync.WaitGroup

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	helloMu sync.Mutex
	hello   map[uint32][]byte // first reply to a hello, by request opcode

	stats commandStats
}

// lane is one upstream connection; whoever holds it (taken from serialProxy.lanes) owns it.
type lane struct {
	up net.Conn
	// handshook: the connection has had its one client-metadata handshake; FerretDB refuses a second, so
	// later clients' handshakes are forwarded without it.
	handshook bool
}

// maxMessage bounds one wire message (MongoDB's own limit is 48 MB).
const maxMessage = 64 << 20

// opMsg is the OP_MSG opcode; its flag bit 1 (moreToCome) means "no reply follows" on a request, and
// "another reply follows" on a reply.
const (
	opMsg      = 2013
	moreToCome = 1 << 1
)

func startSerialProxy(upstream string, lanes int) (*serialProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("error listening for the FerretDB proxy: %w", err)
	}
	p := &serialProxy{ln: ln, upstream: upstream, lanes: make(chan *lane, max(lanes, 1)), conns: map[net.Conn]struct{}{},
		hello: map[uint32][]byte{}, stats: commandStats{by: map[string]*CommandStat{}}}
	for range cap(p.lanes) {
		p.lanes <- &lane{}
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *serialProxy) addr() string { return p.ln.Addr().String() }

func (p *serialProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c, true)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *serialProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = c.Close()
		p.track(c, false)
	}()
	for {
		msg, err := readMessage(c)
		if err != nil {
			return
		}
		replies, err := p.exchange(msg)
		if err != nil {
			return
		}
		for _, r := range replies {
			if _, err := c.Write(r); err != nil {
				return
			}
		}
	}
}

// exchange sends one request upstream and reads its replies, holding the upstream to itself meanwhile.
// Handshakes and heartbeats (hello, isMaster) are answered from the first upstream answer instead: behind a
// slow write they would otherwise wait past the driver's heartbeat timeout, and a failed heartbeat makes the
// driver drop every connection it has in use.
func (p *serialProxy) exchange(msg []byte) ([][]byte, error) {
	hello := isHello(msg)
	if hello {
		p.helloMu.Lock()
		cached := p.hello[opcode(msg)]
		p.helloMu.Unlock()
		if cached != nil {
			r := append([]byte(nil), cached...)
			copy(r[8:12], msg[4:8]) // responseTo = the request's id
			return [][]byte{r}, nil
		}
	}
	l := <-p.lanes
	defer func() { p.lanes <- l }()
	if l.up == nil {
		up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
		if err != nil {
			return nil, err
		}
		l.up = up
		p.track(up, true)
	}
	fail := func(err error) ([][]byte, error) {
		_ = l.up.Close()
		p.track(l.up, false)
		l.up = nil
		l.handshook = false
		return nil, err
	}
	if l.handshook {
		msg = stripClientMetadata(msg)
	} else if hasClientMetadata(msg) {
		l.handshook = true
	}
	start := time.Now()
	if _, err := l.up.Write(msg); err != nil {
		return fail(err)
	}
	if isOpMsg(msg) && flags(msg)&moreToCome != 0 {
		return nil, nil
	}
	var out [][]byte
	for {
		r, err := readMessage(l.up)
		if err != nil {
			return fail(err)
		}
		out = append(out, r)
		if !isOpMsg(r) || flags(r)&moreToCome == 0 {
			if hello && len(out) == 1 {
				p.helloMu.Lock()
				if p.hello[opcode(msg)] == nil {
					p.hello[opcode(msg)] = append([]byte(nil), r...)
				}
				p.helloMu.Unlock()
			}
			p.stats.add(msg, time.Since(start))
			return out, nil
		}
	}
}

// section0 returns the OP_MSG body document, or nil when the message is not a plain OP_MSG.
func section0(m []byte) bson.Raw {
	if !isOpMsg(m) || flags(m)&1 != 0 || len(m) < 25 || m[20] != 0 {
		return nil
	}
	doc := bson.Raw(m[21:])
	if err := doc.Validate(); err != nil {
		return nil
	}
	return doc
}

// opQuery is the legacy OP_QUERY opcode, which drivers still use for the first handshake.
const opQuery = 2004

// queryDoc locates the query document of an OP_QUERY: its start and end offsets in m.
func queryDoc(m []byte) (int, int, bool) {
	if len(m) < 20 || binary.LittleEndian.Uint32(m[12:16]) != opQuery {
		return 0, 0, false
	}
	i := 20
	for i < len(m) && m[i] != 0 { // fullCollectionName
		i++
	}
	i += 1 + 8 // NUL, numberToSkip, numberToReturn
	if i+4 > len(m) {
		return 0, 0, false
	}
	n := int(binary.LittleEndian.Uint32(m[i : i+4]))
	if n < 5 || i+n > len(m) {
		return 0, 0, false
	}
	return i, i + n, true
}

// handshakeDoc returns the command document of an OP_MSG or OP_QUERY, with its offsets.
func handshakeDoc(m []byte) (bson.Raw, int, int) {
	if doc := section0(m); doc != nil {
		return doc, 21, 21 + len(doc)
	}
	if a, b, ok := queryDoc(m); ok {
		doc := bson.Raw(m[a:b])
		if doc.Validate() == nil {
			return doc, a, b
		}
	}
	return nil, 0, 0
}

func opcode(m []byte) uint32 { return binary.LittleEndian.Uint32(m[12:16]) }

// isHello reports a handshake or heartbeat command.
func isHello(m []byte) bool {
	doc, _, _ := handshakeDoc(m)
	if doc == nil {
		return false
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) == 0 {
		return false
	}
	switch elems[0].Key() {
	case "hello", "isMaster", "ismaster":
		return true
	}
	return false
}

func hasClientMetadata(m []byte) bool {
	doc, _, _ := handshakeDoc(m)
	return doc != nil && doc.Lookup("client").Type != 0
}

// stripClientMetadata rewrites a handshake without its "client" document.
func stripClientMetadata(m []byte) []byte {
	doc, a, b := handshakeDoc(m)
	if doc == nil || doc.Lookup("client").Type == 0 {
		return m
	}
	elems, err := doc.Elements()
	if err != nil {
		return m
	}
	var d bson.D
	for _, e := range elems {
		if e.Key() == "client" {
			continue
		}
		d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
	}
	nd, err := bson.Marshal(d)
	if err != nil {
		return m
	}
	out := make([]byte, 0, len(m)-(b-a)+len(nd))
	out = append(out, m[:a]...)
	out = append(out, nd...)
	out = append(out, m[b:]...)
	binary.LittleEndian.PutUint32(out[0:4], uint32(len(out)))
	return out
}

func readMessage(r io.Reader) ([]byte, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr[0:4]))
	if n < 16 || n > maxMessage {
		return nil, errors.New("bad wire message length")
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[16:]); err != nil {
		return nil, err
	}
	return msg, nil
}

func isOpMsg(m []byte) bool { return len(m) >= 20 && binary.LittleEndian.Uint32(m[12:16]) == opMsg }

func flags(m []byte) uint32 { return binary.LittleEndian.Uint32(m[16:20]) }

// track adds or removes c from the connections close shuts.
func (p *serialProxy) track(c net.Conn, add bool) {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// close shuts the listener and every client and upstream connection, which ends the exchanges in flight,
// and waits for the proxy's goroutines.
func (p *serialProxy) close() {
	_ = p.ln.Close()
	p.connsMu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.connsMu.Unlock()
	p.wg.Wait()
}

// CommandStat is what the server spent on one kind of command, as seen from the proxy: the time from the
// request's write to its last reply, so with one lane it is the server's own time.
type CommandStat struct {
	Command    string // command name and, for collection commands, the collection: "update requests"
	Count      int
	Total      time.Duration
	Statements int // write statements (update, delete, insert documents) carried
}

type commandStats struct {
	mu sync.Mutex
	by map[string]*CommandStat
}

func (s *commandStats) add(msg []byte, d time.Duration) {
	name, stmts := describe(msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.by[name]
	if c == nil {
		c = &CommandStat{Command: name}
		s.by[name] = c
	}
	c.Count++
	c.Total += d
	c.Statements += stmts
}

// describe names a request's command and counts its write statements (in section 0 or in document
// sequences, as drivers send bulk writes).
func describe(m []byte) (string, int) {
	doc, _, _ := handshakeDoc(m)
	if doc == nil {
		return "other", 0
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) == 0 {
		return "other", 0
	}
	name := elems[0].Key()
	if coll, ok := elems[0].Value().StringValueOK(); ok {
		name += " " + coll
	}
	n := 0
	for _, key := range []string{"updates", "deletes", "documents"} {
		if v, err := doc.LookupErr(key); err == nil {
			if arr, ok := v.ArrayOK(); ok {
				vals, _ := arr.Values()
				n += len(vals)
			}
		}
	}
	if isOpMsg(m) {
		n += sequenceDocs(m)
	}
	return name, n
}

// sequenceDocs counts the documents in an OP_MSG's kind-1 sections (document sequences).
func sequenceDocs(m []byte) int {
	n := 0
	i := 20
	end := len(m)
	if flags(m)&1 != 0 { // checksumPresent
		end -= 4
	}
	for i < end {
		kind := m[i]
		i++
		if i+4 > end {
			break
		}
		size := int(binary.LittleEndian.Uint32(m[i : i+4]))
		if size < 4 || i+size > end {
			break
		}
		if kind == 1 {
			j := i + 4
			for j < i+size && m[j] != 0 { // the sequence's identifier
				j++
			}
			j++
			for j+4 <= i+size {
				d := int(binary.LittleEndian.Uint32(m[j : j+4]))
				if d < 5 {
					break
				}
				n++
				j += d
			}
		}
		i += size
	}
	return n
}

// snapshot returns a copy of what the proxy saw, in no particular order.
func (s *commandStats) snapshot() []CommandStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CommandStat, 0, len(s.by))
	for _, c := range s.by {
		out = append(out, *c)
	}
	return out
}
