// Package dnstest gives a test's names the addresses it chooses, with
// neither /etc/hosts nor a DNS server: its resolver's questions are
// answered in the test's own process. It is imported only by tests.
package dnstest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
)

// DNS record types (RFC 1035, RFC 3596).
const (
	typeA    = 1
	typeAAAA = 28
)

// Resolver returns a resolver that answers each question for a name with
// what answer returns for it, the name in lower case without its final
// dot: an IPv4 address answers A questions, an IPv6 one AAAA questions;
// any other question, or an invalid address, gets no answer. answer may
// change its mind between questions, as a server that rebinds a name
// does.
func Resolver(answer func(name string) netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		// A stream, not a packet connection: the resolver frames its
		// messages with their length, as over TCP.
		client, server := net.Pipe()
		go serve(server, answer)
		return client, nil
	}}
}

// serve answers the questions that come on c until it is closed.
func serve(c net.Conn, answer func(string) netip.Addr) {
	defer c.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		r, ok := reply(q, answer)
		if !ok {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...)); err != nil {
			return
		}
	}
}

// reply returns the answer to the query q, or false when q cannot be
// read.
func reply(q []byte, answer func(string) netip.Addr) ([]byte, bool) {
	if len(q) < 12 {
		return nil, false
	}
	i := 12
	var labels []string
	for {
		if i >= len(q) {
			return nil, false
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil, false
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil, false
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	end := i + 4
	ip := answer(strings.ToLower(strings.Join(labels, ".")))
	var rdata []byte
	switch {
	case qtype == typeA && ip.Is4():
		rdata = ip.AsSlice()
	case qtype == typeAAAA && ip.Is6() && !ip.Is4In6():
		rdata = ip.AsSlice()
	}
	var an byte
	if rdata != nil {
		an = 1
	}
	r := []byte{
		q[0], q[1], // the query's ID
		0x84 | q[2]&0x01, 0x80, // a response, authoritative, recursion as asked and available, no error
		0, 1, 0, an, 0, 0, 0, 0, // one question, the answers, no authority, no additional
	}
	r = append(r, q[12:end]...)
	if rdata != nil {
		r = append(r, 0xc0, 12) // the question's name
		r = binary.BigEndian.AppendUint16(r, qtype)
		r = append(r, 0, 1, 0, 0, 0, 0) // class IN, TTL 0
		r = binary.BigEndian.AppendUint16(r, uint16(len(rdata)))
		r = append(r, rdata...)
	}
	return r, true
}
