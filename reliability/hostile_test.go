package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zeebo/blake3"

	"github.com/idmproject/idm/ctl"
	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// Hostile servers: a server that speaks the idm protocol but lies, cheats
// or stalls in every way the protocol leaves room for. The server here is
// written from docs/protocol.md alone, not from package transport, so it
// can say what our own encoders never would. Each row of hostileRows runs
// as a job of the real idmd, the hostile server alone or listed first
// before three real idm-servers, and must be caught and named in the
// job's status without harming the output, the files around it, or the
// daemon.

// The wire, from docs/protocol.md.
const (
	wireMagic       = "IDMP"
	wireManifestReq = 0x01
	wireRangeReq    = 0x02
	wireHello       = 0x81
	wireManifest    = 0x82
	wireData        = 0x83
	wireError       = 0xEE

	codeOutOfRange = 2
	codeInternal   = 6
)

// trickleEvery is how a trickling server paces its bytes.
const trickleEvery = 100 * time.Millisecond

// frame builds a frame whose length field tells the truth.
func frame(typ byte, payload []byte) []byte {
	return append(header(typ, uint32(len(payload))), payload...)
}

// header builds a frame header with any length field at all.
func header(typ byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, n)
}

// errorFrame builds an error frame; msgLen < 0 makes the message length
// field tell the truth.
func errorFrame(code uint16, msg string, msgLen int) []byte {
	if msgLen < 0 {
		msgLen = len(msg)
	}
	p := binary.BigEndian.AppendUint16(nil, code)
	p = binary.BigEndian.AppendUint16(p, uint16(msgLen))
	return frame(wireError, append(p, msg...))
}

// manifest is a manifest's wire fields, each free to lie.
type manifest struct {
	nameLen int // the name length field; -1 for the truth
	name    string
	size    uint64
	mtime   int64
	seg     uint32
	content [32]byte
	count   int64 // the segment count field; -1 for the truth
	hashes  [][32]byte
}

func (m manifest) payload() []byte {
	nameLen, count := m.nameLen, m.count
	if nameLen < 0 {
		nameLen = len(m.name)
	}
	if count < 0 {
		count = int64(len(m.hashes))
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(nameLen))
	b = append(b, m.name...)
	b = binary.BigEndian.AppendUint64(b, m.size)
	b = binary.BigEndian.AppendUint64(b, uint64(m.mtime))
	b = binary.BigEndian.AppendUint32(b, m.seg)
	b = append(b, m.content[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	for _, h := range m.hashes {
		b = append(b, h[:]...)
	}
	return b
}

// file is a file as a server describes it, hashed here by the rules of
// docs/protocol.md.
type file struct {
	name    string
	data    []byte
	seg     int64
	hashes  [][32]byte
	content [32]byte // the root, as version 2 sends it
}

func newFile(name string, data []byte) *file {
	f := &file{name: name, data: data, seg: defaultSegment(int64(len(data)))}
	for off := int64(0); off < int64(len(data)); off += f.seg {
		f.hashes = append(f.hashes, blake3.Sum256(data[off:min(off+f.seg, int64(len(data)))]))
	}
	f.content = root(uint64(len(data)), uint32(f.seg), f.hashes)
	return f
}

// root is a file's root, the content hash of a version 2 manifest: the
// BLAKE3 of "idm file v1", a zero byte, the size (u64), the segment size
// (u32) and the hash algorithm (u8, 1 for BLAKE3), big-endian, then the
// segment hashes.
func root(size uint64, seg uint32, hashes [][32]byte) [32]byte {
	h := blake3.New()
	b := append([]byte("idm file v1\x00"), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
	binary.BigEndian.PutUint64(b[12:], size)
	binary.BigEndian.PutUint32(b[20:], seg)
	h.Write(b)
	for _, x := range hashes {
		h.Write(x[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

// defaultSegment is the protocol's default segment size: the largest
// power of two giving at least 64 segments, between 64 KiB and 4 MiB.
func defaultSegment(size int64) int64 {
	seg := int64(4 << 20)
	for seg > 64<<10 && size/seg < 64 {
		seg /= 2
	}
	return seg
}

// manifest is the truth about f.
func (f *file) manifest() manifest {
	return manifest{nameLen: -1, name: f.name, size: uint64(len(f.data)), mtime: 1700000000e9,
		seg: uint32(f.seg), content: f.content, count: -1, hashes: f.hashes}
}

// answer is an honest server's answer to a range request.
func (f *file) answer(off, n int64) []byte {
	if off < 0 || n < 0 || off+n > int64(len(f.data)) {
		return errorFrame(codeOutOfRange, "range out of bounds", -1)
	}
	return frame(wireData, f.data[off:off+n])
}

// garbage returns n bytes no server holds, different for each seed.
func garbage(seed, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*131 + int64(i)*7 + int64(i>>8))
	}
	return b
}

// peer is one client connection to the hostile server.
type peer struct {
	c net.Conn
	r *bufio.Reader
}

// open reads the client's opening and answers hello; false when the
// client did not open as the protocol says.
func (p *peer) open() bool {
	var b [6]byte
	if _, err := io.ReadFull(p.r, b[:]); err != nil || string(b[:4]) != wireMagic {
		return false
	}
	return p.send(frame(wireHello, []byte{0, 2}))
}

// request reads one request: its type and, for a range, offset and
// length.
func (p *peer) request() (typ byte, off, n int64, ok bool) {
	var h [5]byte
	if _, err := io.ReadFull(p.r, h[:]); err != nil {
		return 0, 0, 0, false
	}
	ln := binary.BigEndian.Uint32(h[1:])
	var pl [16]byte
	if ln > uint32(len(pl)) {
		return 0, 0, 0, false
	}
	if _, err := io.ReadFull(p.r, pl[:ln]); err != nil {
		return 0, 0, 0, false
	}
	if h[0] == wireRangeReq && ln == 16 {
		off, n = int64(binary.BigEndian.Uint64(pl[:8])), int64(binary.BigEndian.Uint64(pl[8:]))
	}
	return h[0], off, n, true
}

func (p *peer) send(bs ...[]byte) bool {
	for _, b := range bs {
		if _, err := p.c.Write(b); err != nil {
			return false
		}
	}
	return true
}

// hold keeps the connection open and says nothing until the client
// leaves.
func (p *peer) hold() bool {
	io.Copy(io.Discard, p.r)
	return false
}

// trickle sends b one byte at a time, one every trickleEvery.
func (p *peer) trickle(b []byte) bool {
	for i := range b {
		if !p.send(b[i : i+1]) {
			return false
		}
		time.Sleep(trickleEvery)
	}
	return true
}

// liar serves f by the protocol but for what manifest and data replace:
// each answers one request and reports whether to go on.
type liar struct {
	f        *file
	manifest func(p *peer) bool
	data     func(p *peer, off, n int64) bool
}

func (l liar) serve(p *peer) {
	if !p.open() {
		return
	}
	for {
		typ, off, n, ok := p.request()
		if !ok {
			return
		}
		switch {
		case typ == wireManifestReq && l.manifest != nil:
			ok = l.manifest(p)
		case typ == wireManifestReq:
			ok = p.send(frame(wireManifest, l.f.manifest().payload()))
		case typ == wireRangeReq && l.data != nil:
			ok = l.data(p, off, n)
		case typ == wireRangeReq:
			ok = p.send(l.f.answer(off, n))
		default:
			return
		}
		if !ok {
			return
		}
	}
}

// sendManifest is a liar's manifest answer: the manifest m.
func sendManifest(m manifest) func(p *peer) bool {
	payload := m.payload()
	return func(p *peer) bool { return p.send(frame(wireManifest, payload)) }
}

// hostile is a listening hostile server.
type hostile struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// startHostile listens on loopback and runs script for every connection
// until the test ends.
func startHostile(t testing.TB, script func(p *peer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{ln: ln, conns: map[net.Conn]bool{}}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			if h.closed {
				c.Close()
			} else {
				h.conns[c] = true
			}
			h.mu.Unlock()
			h.wg.Go(func() {
				defer c.Close()
				script(&peer{c: c, r: bufio.NewReader(c)})
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		h.closed = true
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return "idm://" + ln.Addr().String()
}

// How a hostile row's job must end.
const (
	endCompleted = "completed" // complete and byte-identical
	endFailed    = "failed"    // failed, saying why
	endStuck     = "stuck"     // never complete: it waits, or fails saying why
)

// hostileRow is one way a server can be hostile, and what idm must show.
type hostileRow struct {
	name string
	// script is the hostile server's conduct towards each connection, for
	// a job of f.
	script func(f *file) func(p *peer)
	// honest puts three real idm-servers of f after the hostile one.
	honest bool
	// late keeps the honest servers behind closed gates until the
	// hostile one is caught, so that it is caught whatever the speed of
	// the others.
	late bool
	// held lets the honest servers describe the file but holds back
	// every byte of it until the hostile one is caught, so that the job
	// cannot end before the hostile source is heard.
	held bool
	// caught lists the hostile source's states that show it was caught;
	// reason is what its last_error must then say (a regexp).
	caught []string
	reason string
	// ends lists how the job may end; endReason is what a failed job's
	// last_error must say (a regexp).
	ends      []string
	endReason string
}

// Shorthands for the table.
var (
	caughtBad    = []string{api.SourceQuarantined}
	caughtOther  = []string{api.SourceRejected}
	caughtBroken = []string{api.SourceDown, api.SourceRejected, api.SourceFailed} // a protocol violation: any is right
	caughtSilent = []string{api.SourceDown}
)

// lieInData is the conduct of a server whose manifest is true and whose
// answers to range requests are data's.
func lieInData(data func(f *file, p *peer, off, n int64) bool) func(f *file) func(p *peer) {
	return func(f *file) func(p *peer) {
		return liar{f: f, data: func(p *peer, off, n int64) bool { return data(f, p, off, n) }}.serve
	}
}

// lieInManifest is the conduct of a server whose manifest is the true one
// as edit changes it, and whose data is true.
func lieInManifest(edit func(f *file, m *manifest)) func(f *file) func(p *peer) {
	return func(f *file) func(p *peer) {
		m := f.manifest()
		edit(f, &m)
		return liar{f: f, manifest: sendManifest(m)}.serve
	}
}

// named is the conduct of an honest server that names its file name.
func named(name string) func(f *file) func(p *peer) {
	return lieInManifest(func(f *file, m *manifest) { m.name = name })
}

// corrupt serves flipped bytes for the segments bad picks.
func corrupt(bad func(seg int64) bool) func(f *file) func(p *peer) {
	return lieInData(func(f *file, p *peer, off, n int64) bool {
		b := f.answer(off, n)
		if b[0] == wireData && bad(off/f.seg) {
			for i := 5; i < len(b); i++ {
				b[i] ^= 0xA5
			}
		}
		return p.send(b)
	})
}

// anotherFile describes other (a file of the given size, not f) and
// serves f's bytes in its place: the job must not take one for the other.
func anotherFile(size func(f *file) int) func(f *file) func(p *peer) {
	return func(f *file) func(p *peer) {
		other := newFile(f.name, garbage(7, int64(size(f))))
		return liar{f: f, manifest: sendManifest(other.manifest()), data: func(p *peer, off, n int64) bool {
			b := make([]byte, n)
			if off < int64(len(f.data)) {
				copy(b, f.data[off:])
			}
			return p.send(frame(wireData, b))
		}}.serve
	}
}

// poisoned tells the truth about the size, the segment size and the
// content hash, but lists hashes of garbage for every fourth segment and
// serves that garbage for them, so that each of its segments verifies
// against its own list.
func poisoned(f *file) func(p *peer) { return poison(f, false) }

// poisonedRooted is poisoned with the root recomputed over the poisoned
// hashes: a manifest true to itself, of a file that is not the honest one.
func poisonedRooted(f *file) func(p *peer) { return poison(f, true) }

func poison(f *file, reroot bool) func(p *peer) {
	bad := func(seg int64) bool { return seg%4 == 1 }
	m := f.manifest()
	m.hashes = slices.Clone(m.hashes)
	for i := range m.hashes {
		if bad(int64(i)) {
			_, n := segmentOf(f, int64(i))
			m.hashes[i] = blake3.Sum256(garbage(int64(i), n))
		}
	}
	if reroot {
		m.content = root(m.size, m.seg, m.hashes)
	}
	return liar{f: f, manifest: sendManifest(m), data: func(p *peer, off, n int64) bool {
		if i := off / f.seg; bad(i) && off == i*f.seg {
			return p.send(frame(wireData, garbage(i, n)))
		}
		return p.send(f.answer(off, n))
	}}.serve
}

func segmentOf(f *file, i int64) (off, n int64) {
	off = i * f.seg
	return off, min(f.seg, int64(len(f.data))-off)
}

// huge64TiB is the manifest of a 64 TiB file: the largest the protocol's
// limits allow (2^20 segments of 64 MiB), 32 MiB of hashes. It is built
// once and shared by the rows that send it.
var huge64TiB = sync.OnceValue(func() []byte {
	m := manifest{nameLen: -1, name: "huge.bin", size: 64 << 40, mtime: 1, seg: 64 << 20, count: 1 << 20}
	hashes := bytes.Repeat([]byte("sixty-four tebibytes of nothing"), (32<<20)/31+1)[:32<<20]
	list := make([][32]byte, 1<<20)
	for i := range list {
		copy(list[i][:], hashes[32*i:])
	}
	m.content = root(m.size, m.seg, list)
	return frame(wireManifest, append(m.payload(), hashes...))
})

// send64TiB answers the manifest request with huge64TiB, built before the
// job starts so that its answer comes as soon as the honest ones and is
// part of the vote on the job's file.
func send64TiB(*file) func(p *peer) {
	b := huge64TiB()
	return func(p *peer) {
		if p.open() {
			if _, _, _, ok := p.request(); ok && p.send(b) {
				p.hold()
			}
		}
	}
}

// The hostile message of the error-frame rows: control characters, ANSI
// escapes that clear the screen and fake a line, a bidirectional override,
// a C1 control, and enough text to reach the protocol's 1 KiB limit.
var hostileMessage = func() string {
	s := "\x1b[2J\x1b[H\x1b[31mALL YOUR FILES\x1b[0m\r\nJob 1 completed\x07\x08\x00\x7f\u009b31m\u202Etxt.exe\t|"
	return s + strings.Repeat("\x1b]0;pwned\x07A", (1000-len(s))/12)
}()

// hostileRows is the table. Each row is one job of one daemon, all at
// once: the hostile server alone, or listed first before three real
// idm-servers (honest).
var hostileRows = []hostileRow{
	// Wrong bytes.
	{name: "corrupt every segment", script: corrupt(func(int64) bool { return true }),
		caught: caughtBad, reason: `quarantined after 3 corrupt segments`, ends: []string{endFailed}, endReason: `quarantined`},
	{name: "corrupt every segment", script: corrupt(func(int64) bool { return true }), honest: true, late: true,
		caught: caughtBad, reason: `quarantined after 3 corrupt segments`, ends: []string{endCompleted}},
	{name: "corrupt every 3rd segment", script: corrupt(func(i int64) bool { return i%3 == 2 }),
		caught: caughtBad, reason: `quarantined after 3 corrupt segments`, ends: []string{endFailed}, endReason: `quarantined`},
	{name: "corrupt every 3rd segment", script: corrupt(func(i int64) bool { return i%3 == 2 }), honest: true, late: true,
		caught: caughtBad, reason: `quarantined after 3 corrupt segments`, ends: []string{endCompleted}},

	// A manifest of another file, with the job's bytes behind it.
	{name: "manifest of a bigger file", script: anotherFile(func(f *file) int { return len(f.data) + 12345 }),
		caught: caughtBad, reason: `quarantined`, ends: []string{endFailed}, endReason: `quarantined`},
	{name: "manifest of a bigger file", script: anotherFile(func(f *file) int { return len(f.data) + 12345 }), honest: true, held: true,
		caught: caughtOther, reason: `different file`, ends: []string{endCompleted}},
	{name: "manifest of other content", script: anotherFile(func(f *file) int { return len(f.data) }),
		caught: caughtBad, reason: `quarantined`, ends: []string{endFailed}, endReason: `quarantined`},
	{name: "manifest of other content", script: anotherFile(func(f *file) int { return len(f.data) }), honest: true, held: true,
		caught: caughtOther, reason: `different file`, ends: []string{endCompleted}},

	// A poisoned segment-hash list, listed first.
	{name: "poisoned segment hashes", script: poisoned,
		ends: []string{endFailed}, endReason: `(?i)hash|verif|disagree`},
	{name: "poisoned segment hashes", script: poisoned, honest: true, held: true,
		caught: caughtBroken, reason: `(?i)segment hashes hash to`, ends: []string{endCompleted}},
	{name: "poisoned segment hashes with their own root", script: poisonedRooted, honest: true, held: true,
		caught: caughtOther, reason: `(?i)different file`, ends: []string{endCompleted}},

	// Absurd sizes and counts.
	{name: "size 2^62", script: lieInManifest(func(f *file, m *manifest) { m.size = 1 << 62 }),
		caught: caughtBroken, reason: `(?i)segment|size`, ends: []string{endStuck}, endReason: `(?i)segment|size`},
	{name: "size 2^62", script: lieInManifest(func(f *file, m *manifest) { m.size = 1 << 62 }), honest: true, late: true,
		caught: caughtBroken, reason: `(?i)segment|size`, ends: []string{endCompleted}},
	{name: "size 2^64-1", script: lieInManifest(func(f *file, m *manifest) { m.size = 1<<64 - 1 }),
		caught: caughtBroken, reason: `(?i)size`, ends: []string{endStuck}, endReason: `(?i)size`},
	{name: "size 64 TiB", script: send64TiB, ends: []string{endFailed}, endReason: `(?i)no space left on device|file too large`},
	// Beside honest servers, the honest majority decides the job's file
	// at once, often before the 32 MiB manifest has even arrived: the
	// job must complete right, whether or not the liar was heard.
	{name: "size 64 TiB", script: send64TiB, honest: true, ends: []string{endCompleted}},
	{name: "segment count 2^32-1", script: lieInManifest(func(f *file, m *manifest) { m.count = 1<<32 - 1 }),
		caught: caughtBroken, reason: `(?i)segment`, ends: []string{endStuck}, endReason: `(?i)segment`},
	{name: "segment count 1 for many segments", script: lieInManifest(func(f *file, m *manifest) { m.hashes = m.hashes[:1] }),
		caught: caughtBroken, reason: `(?i)segment`, ends: []string{endStuck}, endReason: `(?i)segment`},
	{name: "segment size 0", script: lieInManifest(func(f *file, m *manifest) { m.seg = 0 }),
		caught: caughtBroken, reason: `(?i)segment size`, ends: []string{endStuck}, endReason: `(?i)segment size`},
	{name: "segment size 1", script: lieInManifest(func(f *file, m *manifest) { m.seg = 1 }),
		caught: caughtBroken, reason: `(?i)segment size`, ends: []string{endStuck}, endReason: `(?i)segment size`},
	{name: "segment size 2^31", script: lieInManifest(func(f *file, m *manifest) { m.seg = 1 << 31 }),
		caught: caughtBroken, reason: `(?i)segment size`, ends: []string{endStuck}, endReason: `(?i)segment size`},
	{name: "name length 65535", script: lieInManifest(func(f *file, m *manifest) { m.name = strings.Repeat("n", 65535) }),
		caught: caughtBroken, reason: `(?i)name`, ends: []string{endStuck}, endReason: `(?i)name`},
	{name: "manifest frame of 4 GiB", script: manifestFrame(func(p *peer, payload []byte) bool {
		return p.send(header(wireManifest, 1<<32-1), payload) && p.hold()
	}), caught: caughtBroken, reason: `(?i)frame|limit`, ends: []string{endStuck}, endReason: `(?i)frame|limit`},
	{name: "manifest frame of 4 GiB", script: manifestFrame(func(p *peer, payload []byte) bool {
		return p.send(header(wireManifest, 1<<32-1), payload) && p.hold()
	}), honest: true, late: true, caught: caughtBroken, reason: `(?i)frame|limit`, ends: []string{endCompleted}},

	// A length field larger than what follows.
	{name: "manifest frame cut short, then closed", script: manifestFrame(func(p *peer, payload []byte) bool {
		p.send(header(wireManifest, uint32(len(payload))), payload[:len(payload)/2])
		return false
	}), caught: caughtBroken, reason: `(?i)EOF|closed|reset|truncated|short`, ends: []string{endStuck}, endReason: `.`},
	{name: "manifest frame cut short, then closed", script: manifestFrame(func(p *peer, payload []byte) bool {
		p.send(header(wireManifest, uint32(len(payload))), payload[:len(payload)/2])
		return false
	}), honest: true, late: true, caught: caughtBroken, reason: `(?i)EOF|closed|reset|truncated|short`, ends: []string{endCompleted}},
	{name: "manifest frame cut short, then silent", script: manifestFrame(func(p *peer, payload []byte) bool {
		return p.send(header(wireManifest, uint32(len(payload))), payload[:len(payload)/2]) && p.hold()
	}), caught: caughtSilent, reason: `(?i)stall|time`, ends: []string{endStuck}, endReason: `.`},
	{name: "data frame cut short, then closed", script: lieInData(func(f *file, p *peer, off, n int64) bool {
		p.send(f.answer(off, n)[:5+n/2])
		return false
	}), caught: caughtBroken, reason: `(?i)EOF|closed|reset|truncated|short`, ends: []string{endStuck}, endReason: `.`},
	{name: "data frame cut short, then closed", script: lieInData(func(f *file, p *peer, off, n int64) bool {
		p.send(f.answer(off, n)[:5+n/2])
		return false
	}), honest: true, late: true, caught: caughtBroken, reason: `(?i)EOF|closed|reset|truncated|short`, ends: []string{endCompleted}},
	{name: "data frame cut short, then silent", script: lieInData(func(f *file, p *peer, off, n int64) bool {
		return p.send(f.answer(off, n)[:5+n/2]) && p.hold()
	}), caught: caughtSilent, reason: `(?i)stall|time`, ends: []string{endStuck}, endReason: `.`},
	{name: "data frame longer than asked", script: lieInData(func(f *file, p *peer, off, n int64) bool {
		return p.send(header(wireData, uint32(n+1)), garbage(1, n+1))
	}), caught: caughtBroken, reason: `(?i)bytes|protocol`, ends: []string{endStuck}, endReason: `.`},
	{name: "error message longer than its frame", script: func(f *file) func(p *peer) {
		return liar{f: f, manifest: func(p *peer) bool { return p.send(errorFrame(codeInternal, "short", 1000)) }}.serve
	}, caught: caughtBroken, reason: `(?i)error|protocol`, ends: []string{endStuck}, endReason: `.`},

	// Silence and trickling.
	{name: "silent from the start", script: func(*file) func(p *peer) { return func(p *peer) { p.hold() } },
		caught: caughtSilent, reason: `(?i)stall|time|deadline`, ends: []string{endStuck}, endReason: `.`},
	{name: "silent from the start", script: func(*file) func(p *peer) { return func(p *peer) { p.hold() } },
		honest: true, late: true, caught: caughtSilent, reason: `(?i)stall|time|deadline`, ends: []string{endCompleted}},
	{name: "silent after hello", script: func(*file) func(p *peer) {
		return func(p *peer) {
			if p.open() {
				p.hold()
			}
		}
	}, caught: caughtSilent, reason: `(?i)stall|time`, ends: []string{endStuck}, endReason: `.`},
	{name: "silent after the manifest", script: lieInData(func(f *file, p *peer, off, n int64) bool { return p.hold() }),
		caught: caughtSilent, reason: `(?i)stall|time`, ends: []string{endStuck}, endReason: `.`},
	{name: "silent after the manifest", script: lieInData(func(f *file, p *peer, off, n int64) bool { return p.hold() }),
		honest: true, late: true, caught: caughtSilent, reason: `(?i)stall|time`, ends: []string{endCompleted}},
	{name: "trickling from the start", script: func(f *file) func(p *peer) {
		return func(p *peer) {
			var b [6]byte
			if _, err := io.ReadFull(p.r, b[:]); err != nil || !p.trickle(frame(wireHello, []byte{0, 2})) {
				return
			}
			for {
				typ, off, n, ok := p.request()
				if !ok {
					return
				}
				out := f.answer(off, n)
				if typ == wireManifestReq {
					out = frame(wireManifest, f.manifest().payload())
				}
				if !p.trickle(out) {
					return
				}
			}
		}
	}, caught: caughtSilent, reason: `(?i)stall|slow|time`, ends: []string{endStuck}, endReason: `.`},
	{name: "trickling the manifest", script: func(f *file) func(p *peer) {
		return liar{f: f, manifest: func(p *peer) bool { return p.trickle(frame(wireManifest, f.manifest().payload())) }}.serve
	}, honest: true, late: true, caught: caughtSilent, reason: `(?i)stall|slow|time`, ends: []string{endCompleted}},
	{name: "trickling data", script: lieInData(func(f *file, p *peer, off, n int64) bool { return p.trickle(f.answer(off, n)) }),
		honest: true, ends: []string{endCompleted}},
	{name: "trickling data, dropped", script: lieInData(func(f *file, p *peer, off, n int64) bool { return p.trickle(f.answer(off, n)) }),
		honest: true, late: true, caught: caughtSilent, reason: `(?i)stall|slow|time`, ends: []string{endCompleted}},

	// Error frames.
	{name: "error frame with a hostile message", script: func(f *file) func(p *peer) {
		return liar{f: f, manifest: func(p *peer) bool { return p.send(errorFrame(codeInternal, hostileMessage, -1)) }}.serve
	}, caught: caughtBroken, reason: `(?i)internal error`, ends: []string{endStuck}, endReason: `.`},
	{name: "error frame with a hostile message", script: func(f *file) func(p *peer) {
		return liar{f: f, manifest: func(p *peer) bool { return p.send(errorFrame(codeInternal, hostileMessage, -1)) }}.serve
	}, honest: true, late: true, caught: caughtBroken, reason: `(?i)internal error`, ends: []string{endCompleted}},
	{name: "error frame with a 3 KiB message", script: func(f *file) func(p *peer) {
		msg := strings.Repeat(hostileMessage, 3)
		return liar{f: f, manifest: func(p *peer) bool { return p.send(errorFrame(codeInternal, msg, -1)) }}.serve
	}, caught: caughtBroken, reason: `(?i)error|message|bytes`, ends: []string{endStuck}, endReason: `.`},
	{name: "error frame with a hostile message for a range", script: lieInData(func(f *file, p *peer, off, n int64) bool {
		return p.send(errorFrame(codeInternal, hostileMessage, -1))
	}), caught: caughtBroken, reason: `(?i)internal error`, ends: []string{endStuck}, endReason: `.`},
	{name: "error frame of unknown code instead of hello", script: func(*file) func(p *peer) {
		return func(p *peer) {
			var b [6]byte
			if _, err := io.ReadFull(p.r, b[:]); err == nil {
				p.send(errorFrame(0xFFFF, hostileMessage, -1))
			}
		}
	}, caught: caughtBroken, reason: `(?i)error 65535|server`, ends: []string{endStuck}, endReason: `.`},

	// Hostile file names; the data is true.
	{name: "name ../../etc/passwd", script: named("../../etc/passwd"), ends: []string{endCompleted}},
	{name: "name /abs/path", script: named("/abs/path"), ends: []string{endCompleted}},
	{name: "name a/b", script: named("a/b"), ends: []string{endCompleted}},
	{name: "name ..", script: named(".."), ends: []string{endCompleted}},
	{name: "name .", script: named("."), ends: []string{endCompleted}},
	{name: "name ...", script: named("..."), ends: []string{endCompleted}},
	{name: "name space", script: named(" "), ends: []string{endCompleted}},
	// An empty or over-long name may be refused, as the protocol allows
	// neither, or replaced.
	{name: "name empty", script: named(""),
		caught: caughtBroken, reason: `(?i)name`, ends: []string{endCompleted, endStuck}, endReason: `(?i)name`},
	{name: "name of 4 KiB", script: named(strings.Repeat("n", 4096)),
		caught: caughtBroken, reason: `(?i)name`, ends: []string{endCompleted, endStuck}, endReason: `(?i)name`},
	{name: "name of 1 KiB of two-byte runes", script: named(strings.Repeat("é", 512)), ends: []string{endCompleted}},
	{name: "name with NUL", script: named("evil\x00.txt"), ends: []string{endCompleted}},
	{name: "name NUL alone", script: named("\x00"), ends: []string{endCompleted}},
	{name: "name with newline", script: named("two\nlines.txt"), ends: []string{endCompleted}},
	{name: "name with ANSI escapes", script: named("\x1b[2J\x1b[31mred.txt"), ends: []string{endCompleted}},
	{name: "name with invalid UTF-8", script: named("bad\xff\xfe.txt"), ends: []string{endCompleted}},
	{name: "name with U+202E", script: named("invoice\u202Efdp.exe"), ends: []string{endCompleted}},
	{name: "name x.idmpart", script: named("x.idmpart"), ends: []string{endCompleted}},
	{name: "name CON", script: named("CON"), ends: []string{endCompleted}},
	// The output directory already holds x.idmpart, which is not this
	// job's: it must not be taken for the job's partial file.
	{name: "name x beside a foreign x.idmpart", script: named("x"), ends: []string{endCompleted}},
}

// manifestFrame is the conduct of a server whose answer to a manifest
// request is send's, given the true manifest's payload.
func manifestFrame(send func(p *peer, payload []byte) bool) func(f *file) func(p *peer) {
	return func(f *file) func(p *peer) {
		payload := f.manifest().payload()
		return liar{f: f, manifest: func(p *peer) bool { return send(p, payload) }}.serve
	}
}

// hostileCase is one row's job and what surrounds it.
type hostileCase struct {
	row     hostileRow
	f       *file
	id      uint64
	sources []string
	root    string            // the tree around the output directory
	out     string            // the output directory
	before  map[string]string // the tree before the job
	gates   []*gate           // before the honest servers of a late row
}

// gate stands before an honest server. Closed, it hangs up on every
// connection, as a server that is down would, or, when it describes, lets
// the server describe its file but holds back every request for its
// bytes; open, it passes the bytes both ways. Its port stays bound all
// along, so that no other server of the test takes it, as one could the
// port of a server shut down.
type gate struct {
	target    string
	describes bool
	opened    chan struct{}
	once      sync.Once
}

// newGate returns a closed gate before target, opened at the latest when
// t ends, so that no connection it holds outlives the test.
func newGate(t testing.TB, target string, describes bool) *gate {
	g := &gate{target: target, describes: describes, opened: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

// open opens the gate; it may be called more than once.
func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

func (g *gate) isOpen() bool {
	select {
	case <-g.opened:
		return true
	default:
		return false
	}
}

func (g *gate) serve(p *peer) {
	if !g.isOpen() && !g.describes {
		return
	}
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if g.holdRanges(up, p.r) == nil {
			io.Copy(up, p.r)
		}
		up.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(p.c, up)
	p.c.Close()
	<-done
}

// holdRanges passes the client's opening and its requests on to up until
// the first range request, which it passes only once the gate is open.
func (g *gate) holdRanges(up io.Writer, r *bufio.Reader) error {
	opening := make([]byte, 6)
	if _, err := io.ReadFull(r, opening); err != nil {
		return err
	}
	if _, err := up.Write(opening); err != nil {
		return err
	}
	for {
		h := make([]byte, 5, 5+16)
		if _, err := io.ReadFull(r, h); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > 16 {
			return fmt.Errorf("request of %d bytes", n)
		}
		req := h[:5+n]
		if _, err := io.ReadFull(r, req[5:]); err != nil {
			return err
		}
		if req[0] == wireRangeReq {
			<-g.opened
		}
		if _, err := up.Write(req); err != nil || req[0] == wireRangeReq {
			return err
		}
	}
}

// hostileHarness is the one daemon, the one idm-server and the event
// watcher shared by every row.
type hostileHarness struct {
	d     *proctest.Daemon
	srv   *proctest.Servers
	file  *file
	seen  *sightings
	cases []*hostileCase
}

// TestHostileServers runs every row of hostileRows as a job of one idmd,
// all at once, and checks each: the hostile source is caught and named
// with a reason a person understands, the job completes byte-identical
// when honest sources are beside it and never completes with wrong bytes
// without them, nothing outside the output directory changes, and idmd
// stays up, answers, and keeps its memory bounded.
func TestHostileServers(t *testing.T) {
	size := pick(1<<20, 32<<20)
	path, data := proctest.Sample(t, size, 80)
	h := &hostileHarness{file: newFile(filepath.Base(path), data), seen: newSightings()}

	h.srv = proctest.StartServers(t, path, 3, "")
	h.d = proctest.NewDaemon(t)
	h.d.Start("--max-active", strconv.Itoa(2*len(hostileRows)))
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); h.seen.watch(ctx, h.d.Client()) }()
	passwd := fileSum("/etc/passwd")
	_, absErr := os.Lstat("/abs")
	t.Cleanup(func() {
		h.checkDaemon(t)
		cancel()
		<-watchDone
		if sum := fileSum("/etc/passwd"); sum != passwd {
			t.Errorf("/etc/passwd changed during the test")
		}
		if _, err := os.Lstat("/abs"); errors.Is(absErr, fs.ErrNotExist) && err == nil {
			t.Errorf("/abs was created during the test")
		}
	})

	for _, r := range hostileRows {
		variant := "alone"
		if r.honest {
			variant = "beside honest"
		}
		t.Run(variant+"/"+r.name, func(t *testing.T) {
			c := h.start(t, r)
			t.Parallel()
			h.check(t, c)
		})
	}
	h.release()
}

// start sets up a row's tree and hostile server and queues its job.
func (h *hostileHarness) start(t *testing.T, r hostileRow) *hostileCase {
	c := &hostileCase{row: r, f: h.file, root: t.TempDir()}
	// The output directory sits deep in a tree of the user's files, so
	// that a name climbing out of it lands somewhere the test watches.
	c.out = filepath.Join(c.root, "home", "ann", "Downloads")
	for name, content := range map[string]string{
		"etc/passwd":                  "root:x:0:0::/root:/bin/sh\n",
		"home/ann/notes.txt":          "notes\n",
		"home/ann/Downloads/keep.txt": "the user's own file\n",
		// Another job's partial file, or the user's: not this job's.
		"home/ann/Downloads/x.idmpart": "not this job's\n",
	} {
		p := filepath.Join(c.root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.before = listTree(t, c.root)
	c.sources = []string{startHostile(t, r.script(c.f))}
	for _, port := range h.srv.Ports {
		if !r.honest {
			break
		}
		addr := "127.0.0.1:" + port
		if r.late || r.held {
			g := newGate(t, addr, r.held)
			c.gates = append(c.gates, g)
			c.sources = append(c.sources, startHostile(t, g.serve))
			continue
		}
		c.sources = append(c.sources, "idm://"+addr)
	}
	j, err := h.d.Client().Create(context.Background(), api.CreateRequest{Sources: c.sources, Dir: c.out})
	if err != nil {
		t.Fatalf("create the job: %v", err)
	}
	c.id = j.ID
	h.cases = append(h.cases, c)
	return c
}

// release opens each late row's gates once its hostile source is caught,
// or at the deadline, for its check to report.
func (h *hostileHarness) release() {
	pending := map[*hostileCase]bool{}
	for _, c := range h.cases {
		if c.row.late || c.row.held {
			pending[c] = true
		}
	}
	deadline := time.Now().Add(hostileWait)
	for len(pending) > 0 {
		for c := range pending {
			h.poll(c.id)
			if _, ok := h.seen.caught(c.id, 0, c.row.caught); ok || time.Now().After(deadline) {
				for _, g := range c.gates {
					g.open()
				}
				delete(pending, c)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostileWait bounds every wait of the test; nothing should take long.
var hostileWait = pick(60*time.Second, 5*time.Minute)

// poll records the job as the API shows it now, beside what the event
// stream showed.
func (h *hostileHarness) poll(id uint64) *api.Job {
	j, err := h.d.Client().Job(context.Background(), id)
	if err != nil {
		return nil
	}
	h.seen.add(j)
	return j
}

// check waits for a row's job to end as the row says and checks
// everything around it.
func (h *hostileHarness) check(t *testing.T, c *hostileCase) {
	r := c.row
	var j *api.Job
	deadline := time.Now().Add(hostileWait)
	for {
		if j = h.poll(c.id); j == nil {
			if _, err := h.d.Client().Version(context.Background()); err != nil {
				t.Fatalf("idmd does not answer: %v", err)
			}
			t.Fatalf("job %d is gone", c.id)
		}
		_, caught := h.seen.caught(c.id, 0, r.caught)
		stuck := slices.Contains(r.ends, endStuck)
		switch {
		case j.State == api.StateCompleted && !slices.Contains(r.ends, endCompleted),
			j.State == api.StateFailed && !slices.Contains(r.ends, endFailed) && !stuck,
			j.State == api.StateCancelled:
			t.Fatalf("job %s (%s), want %v; its sources: %s", j.State, j.LastError, r.ends, h.seen.story(c.id))
		case j.State == api.StateCompleted && stuck:
			// A name replaced rather than refused.
		case j.Done() && r.caught != nil && !caught:
			t.Fatalf("job %s (%s) without its hostile source being caught; its sources: %s", j.State, j.LastError, h.seen.story(c.id))
		case j.Done(), stuck && caught:
		case time.Now().After(deadline):
			t.Fatalf("after %v: job %s, want %v; hostile source caught: %v; its sources: %s", hostileWait, j.State, r.ends, caught, h.seen.story(c.id))
		default:
			time.Sleep(50 * time.Millisecond)
			continue
		}
		break
	}

	if r.caught != nil {
		s, ok := h.seen.caught(c.id, 0, r.caught)
		if ok && !regexp.MustCompile(r.reason).MatchString(s.err) {
			t.Errorf("hostile source %s, last error %q: does not say %s", s.state, s.err, r.reason)
		}
		if ok && s.err == "" {
			t.Errorf("hostile source %s with no reason", s.state)
		}
	}
	switch {
	case j.State == api.StateCompleted:
		h.checkOutput(t, c, j)
	case j.State == api.StateFailed:
		if !regexp.MustCompile(r.endReason).MatchString(j.LastError) {
			t.Errorf("job failed with %q, which does not say %s", j.LastError, r.endReason)
		}
		h.checkTree(t, c, "", true)
	default:
		if _, err := h.d.Client().Cancel(context.Background(), c.id); err != nil {
			t.Errorf("cancel the job: %v", err)
		}
		h.checkTree(t, c, "", false)
	}
	if ok, bad := h.seen.clean(c.id); !ok {
		t.Errorf("the job's status showed an error no terminal can take safely: %q", bad)
	}
	h.checkStatus(t, c)
	if _, err := h.d.Client().Version(context.Background()); err != nil {
		t.Fatalf("idmd does not answer: %v", err)
	}
}

// checkOutput checks a completed job's file: byte-identical, under a safe
// name, in the output directory.
func (h *hostileHarness) checkOutput(t *testing.T, c *hostileCase, j *api.Job) {
	name := filepath.Base(j.Path)
	if filepath.Dir(j.Path) != c.out {
		t.Errorf("file published at %q, outside %s", j.Path, c.out)
	}
	if name != j.Name && !strings.HasPrefix(name, strings.TrimSuffix(j.Name, filepath.Ext(j.Name))) {
		t.Errorf("file published as %q, the job's name is %q", name, j.Name)
	}
	if bad := unsafeName(name); bad != "" {
		t.Errorf("file published under an unsafe name %q: %s", name, bad)
	}
	if strings.HasPrefix(name, ".") {
		t.Errorf("file published under a hidden name %q", name)
	}
	fi, err := os.Lstat(filepath.Join(c.out, name))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the published file %q: %v, %v", name, fi, err)
	}
	got, err := os.ReadFile(filepath.Join(c.out, name))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(c.f.data) {
		t.Errorf("%s differs from the original (%d bytes, want %d)", name, len(got), len(c.f.data))
	}
	h.checkTree(t, c, name, false)
}

// checkTree checks that the tree around the output directory is as it
// was, but for the one file the job published (if any) and, with
// partial, the partial file a failed job keeps, in the output directory.
func (h *hostileHarness) checkTree(t *testing.T, c *hostileCase, published string, partial bool) {
	after := listTree(t, c.root)
	outRel, _ := filepath.Rel(c.root, c.out)
	for p, was := range c.before {
		if p == outRel {
			continue // its times change with what it holds
		}
		if now, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if now != was {
			t.Errorf("%s changed: %s, was %s", p, now, was)
		}
	}
	var added []string
	for p := range after {
		if _, ok := c.before[p]; !ok {
			added = append(added, p)
		}
	}
	slices.Sort(added)
	for _, p := range added {
		switch {
		case filepath.Dir(p) != outRel:
			t.Errorf("%s was created outside the output directory", p)
		case filepath.Base(p) == published:
		case partial:
			// A failed job keeps its partial file, to be resumed.
			if bad := unsafeName(filepath.Base(p)); bad != "" {
				t.Errorf("partial file %q: %s", filepath.Base(p), bad)
			}
		default:
			t.Errorf("%s was left in the output directory", p)
		}
	}
}

// checkStatus checks that idmctl status prints the job in clean lines:
// nothing a terminal would act on, and one row per source.
func (h *hostileHarness) checkStatus(t *testing.T, c *hostileCase) {
	r := h.d.Idmctl("status", strconv.FormatUint(c.id, 10))
	if r.Code != 0 {
		t.Errorf("idmctl status: exit %d: %s", r.Code, r.Stderr)
		return
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	for _, l := range lines {
		if bad := unsafeText(l); bad != "" {
			t.Errorf("idmctl status printed a line with %s: %q", bad, l)
		}
	}
	head := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "#") })
	if head < 0 || len(lines)-head-1 != len(c.sources) {
		t.Errorf("idmctl status: want a header and %d source lines, got:\n%s", len(c.sources), r.Stdout)
		return
	}
	for i, l := range lines[head+1:] {
		if !strings.HasPrefix(l, strconv.Itoa(i+1)+" ") {
			t.Errorf("idmctl status: source line %d is %q", i+1, l)
		}
	}
}

// checkDaemon checks, once every row is done, that idmd is up, answers,
// lists every job in clean lines and kept its memory bounded.
func (h *hostileHarness) checkDaemon(t *testing.T) {
	jobs, err := h.d.Client().Jobs(context.Background())
	if err != nil {
		t.Errorf("idmd does not answer after the hostile servers: %v", err)
		return
	}
	r := h.d.Idmctl("ls")
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if r.Code != 0 || len(lines) != 1+len(jobs) {
		t.Errorf("idmctl ls: exit %d, %d lines for %d jobs:\n%s%s", r.Code, len(lines), len(jobs), r.Stdout, r.Stderr)
	}
	for i, l := range lines {
		if bad := unsafeText(l); bad != "" {
			t.Errorf("idmctl ls printed a line with %s: %q", bad, l)
		}
		if i > 0 && i <= len(jobs) && !strings.HasPrefix(l, strconv.FormatUint(jobs[i-1].ID, 10)+" ") {
			t.Errorf("idmctl ls: line %d is %q", i, l)
		}
	}
	hwm, err := proctest.VmHWM(h.d.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idmd's peak resident memory over %d jobs of hostile servers: %d MiB", len(jobs), hwm>>20)
	if hwm > hostileMemory {
		t.Errorf("idmd's peak resident memory %d MiB, over %d MiB", hwm>>20, hostileMemory>>20)
	}
}

// hostileMemory bounds idmd's peak resident memory over the whole table.
// The largest legal manifest is 32 MiB of hashes, and three rows send
// one; everything else is small.
const hostileMemory = 256 << 20

// unsafeText names the first thing in s that has no place in a line
// shown to a person, or returns "".
func unsafeText(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return fmt.Sprintf("control character %U", r)
		case r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			return fmt.Sprintf("bidirectional control %U", r)
		}
	}
	return ""
}

// unsafeName says why name is not safe to create in a directory a person
// browses, or returns "".
func unsafeName(name string) string {
	switch {
	case name == "" || name == "." || name == "..":
		return "no name"
	case strings.ContainsAny(name, `/\`):
		return "a path separator"
	case len(name) > 255:
		return fmt.Sprintf("%d bytes, more than a file system takes", len(name))
	}
	return unsafeText(name)
}

// listTree describes every file and directory under root by its mode,
// and a regular file also by its size and content.
func listTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			desc += fmt.Sprintf(" %d bytes %s", fi.Size(), fileSum(p))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fileSum returns a hash of the file at p, or the error reading it.
func fileSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// sighting is one state of one source (src >= 0) or of the job (src ==
// -1) as the API showed it.
type sighting struct {
	src   int
	state string
	err   string
}

// sightings remembers every state the API showed of every job, from its
// event stream and from polls, so that a state held only a moment is not
// missed.
type sightings struct {
	mu   sync.Mutex
	jobs map[uint64][]sighting
}

func newSightings() *sightings { return &sightings{jobs: map[uint64][]sighting{}} }

func (s *sightings) add(j *api.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.jobs[j.ID]
	note := func(x sighting) {
		if !slices.Contains(seen, x) {
			seen = append(seen, x)
		}
	}
	note(sighting{-1, j.State, j.LastError})
	for i, sp := range j.Progress.Sources {
		note(sighting{i, sp.State, sp.LastError})
	}
	s.jobs[j.ID] = seen
}

// watch records every event of the daemon until ctx ends, reconnecting
// when the stream ends.
func (s *sightings) watch(ctx context.Context, c *ctl.Client) {
	for ctx.Err() == nil {
		w, err := c.WatchAll(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { w.Close() })
		for {
			ev, err := w.Next()
			if err != nil {
				break
			}
			s.add(&ev.Job)
		}
		stop()
		w.Close()
	}
}

// caught returns the first sighting of source src of job id in one of
// the states.
func (s *sightings) caught(id uint64, src int, states []string) (sighting, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.jobs[id] {
		if x.src == src && slices.Contains(states, x.state) {
			return x, true
		}
	}
	return sighting{}, false
}

// clean reports whether every error shown for job id was fit for a line
// of a terminal, and bounded; if not, it returns the first that was not.
func (s *sightings) clean(id uint64) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.jobs[id] {
		if unsafeText(x.err) != "" || len(x.err) > maxShownError {
			return false, x.err
		}
	}
	return true, ""
}

// maxShownError bounds an error the API shows: a server's message is at
// most 1 KiB, and escaping what it holds may make it longer.
const maxShownError = 4 << 10

// story lists what was seen of job id's sources, for a failure message.
func (s *sightings) story(id uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, x := range s.jobs[id] {
		if x.src >= 0 {
			fmt.Fprintf(&b, "\n  #%d %s: %.200q", x.src+1, x.state, x.err)
		}
	}
	return b.String()
}
