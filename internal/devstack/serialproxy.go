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

// serialProxy sits in front of FerretDB and forwards every client's wire-protocol messages over one upstream
// connection, one request-reply exchange at a time. FerretDB v1.24 stops answering when several connections
// write at once (seen here with both its SQLite and PostgreSQL backends: its update path waits on a second
// backend connection while holding the first); with one upstream connection that cannot happen, whatever
// number of clients, pools and processes talk to it. Real MongoDB needs none of this.
type serialProxy struct {
	ln       net.Listener
	upstream string

	mu sync.Mutex // serialises exchanges and guards up
	up net.Conn
	// handshook: the upstream connection has had its one client-metadata handshake; FerretDB refuses a
	// second, so later clients' handshakes are forwarded without it.
	handshook bool
	wg        sync.WaitGroup
	done      chan struct{}

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	helloMu sync.Mutex
	hello   map[uint32][]byte // first reply to a hello, by request opcode
}

// maxMessage bounds one wire message (MongoDB's own limit is 48 MB).
const maxMessage = 64 << 20

// opMsg is the OP_MSG opcode; its flag bit 1 (moreToCome) means "no reply follows" on a request, and
// "another reply follows" on a reply.
const (
	opMsg      = 2013
	moreToCome = 1 << 1
)

func startSerialProxy(upstream string) (*serialProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("error listening for the FerretDB proxy: %w", err)
	}
	p := &serialProxy{ln: ln, upstream: upstream, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, hello: map[uint32][]byte{}}
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
		p.connsMu.Lock()
		p.conns[c] = struct{}{}
		p.connsMu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *serialProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = c.Close()
		p.connsMu.Lock()
		delete(p.conns, c)
		p.connsMu.Unlock()
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up == nil {
		up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
		if err != nil {
			return nil, err
		}
		p.up = up
	}
	fail := func(err error) ([][]byte, error) {
		_ = p.up.Close()
		p.up = nil
		p.handshook = false
		return nil, err
	}
	if p.handshook {
		msg = stripClientMetadata(msg)
	} else if hasClientMetadata(msg) {
		p.handshook = true
	}
	if _, err := p.up.Write(msg); err != nil {
		return fail(err)
	}
	if isOpMsg(msg) && flags(msg)&moreToCome != 0 {
		return nil, nil
	}
	var out [][]byte
	for {
		r, err := readMessage(p.up)
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

func (p *serialProxy) close() {
	_ = p.ln.Close()
	p.connsMu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.connsMu.Unlock()
	p.mu.Lock()
	if p.up != nil {
		_ = p.up.Close()
		p.up = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}
