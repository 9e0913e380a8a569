package aria2rpc

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// How fast one address may fail: a burst of failureBurst wrong secrets,
// then one every failureEvery. An address over that is refused without
// its secret being compared, so guessing runs at that pace whatever the
// number of connections.
const (
	failureBurst = 10
	failureEvery = time.Second
	// maxAddrs bounds the addresses the guard remembers.
	maxAddrs = 4096
)

// guard checks the secret of every call and slows down the addresses
// that keep getting it wrong.
type guard struct {
	sum [sha256.Size]byte // the secret's hash: compared at one length

	mu    sync.Mutex
	addrs map[netip.Addr]*rate.Limiter
	// crowd is the bucket of the addresses the guard has no room for.
	crowd *rate.Limiter
}

func newGuard(secret string) *guard {
	return &guard{
		sum:   sha256.Sum256([]byte(secret)),
		addrs: map[netip.Addr]*rate.Limiter{},
		crowd: rate.NewLimiter(rate.Every(failureEvery), failureBurst),
	}
}

// allow reports whether token is the secret, compared in constant time.
// A wrong one costs from's address a token of its bucket; an address
// with none left is refused at once, even with the right secret: the
// caller that shares it with a guesser waits for the guesser to stop.
// The look at the bucket, the comparison and the cost are one step, so
// that many connections at once guess no faster than one.
// counted is true for a wrong secret that was compared: at most the
// bucket's pace, what is worth a line in the log.
func (g *guard) allow(from netip.Addr, token string) (ok, counted bool) {
	sum := sha256.Sum256([]byte(token))
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bucket(from)
	if b.Tokens() < 1 {
		return false, false
	}
	if subtle.ConstantTimeCompare(sum[:], g.sum[:]) == 1 {
		return true, false
	}
	b.Allow()
	return false, true
}

// bucket returns the failure bucket of from's address: its own for IPv4,
// its /64's for IPv6, where one host holds a whole prefix. Called with
// mu held.
func (g *guard) bucket(from netip.Addr) *rate.Limiter {
	key := from.Unmap()
	if key.Is6() {
		key = netip.PrefixFrom(key, 64).Masked().Addr()
	}
	if l, ok := g.addrs[key]; ok {
		return l
	}
	if len(g.addrs) >= maxAddrs {
		// A full bucket remembers nothing worth keeping.
		for k, l := range g.addrs {
			if l.Tokens() >= failureBurst {
				delete(g.addrs, k)
			}
		}
		if len(g.addrs) >= maxAddrs {
			return g.crowd
		}
	}
	l := rate.NewLimiter(rate.Every(failureEvery), failureBurst)
	g.addrs[key] = l
	return l
}
