package httpsrc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idmproject/idm/internal/servertest"
)

// The loopback addresses the tests make stand for other networks.
const (
	publicIP   = "127.0.0.2"
	internalIP = "127.0.0.3"
	publicIP2  = "127.0.0.4"
)

// pretendNetworks makes publicIP and publicIP2 public and internalIP of
// an internal network, for the test's duration.
func pretendNetworks(t *testing.T) {
	pretend(t, map[string]Class{publicIP: Public, publicIP2: Public, internalIP: Internal})
}

// twins starts a on a port of ipA and b on the same port of ipB, as one
// name that resolves to either finds them, and returns the port.
func twins(t *testing.T, ipA string, a http.Handler, ipB string, b http.Handler) string {
	t.Helper()
	for range 10 {
		srv := servertest.HTTPAt(t, ipA, a)
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		if _, err := servertest.HTTPOn(t, net.JoinHostPort(ipB, port), b); err == nil {
			return port
		}
		srv.Close()
	}
	t.Fatalf("no port free on both %s and %s", ipA, ipB)
	return ""
}

// counted serves data as a mirror does and counts the requests it gets.
func counted(data []byte) (http.Handler, *atomic.Int64) {
	n := new(atomic.Int64)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		mirror(data, "")(w, r)
	}), n
}

// resolveTo makes name, for clients made after it, resolve to what the
// returned value holds: a test changes it to rebind the name.
func resolveTo(t *testing.T, name, ip string) *atomic.Pointer[netip.Addr] {
	var to atomic.Pointer[netip.Addr]
	a := netip.MustParseAddr(ip)
	to.Store(&a)
	resolve(t, func(n string) netip.Addr {
		if n == name {
			return *to.Load()
		}
		return netip.Addr{}
	})
	return &to
}

// rebind makes to hold ip.
func rebind(to *atomic.Pointer[netip.Addr], ip string) {
	a := netip.MustParseAddr(ip)
	to.Store(&a)
}

func TestClassOf(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want Class
	}{
		{"127.0.0.1", Machine},
		{"127.255.255.254", Machine},
		{"::1", Machine},
		{"0.0.0.0", Machine},
		{"::", Machine},
		{"0.1.2.3", Machine},
		{"::ffff:127.0.0.1", Machine},
		{"::ffff:0.0.0.0", Machine},
		{"10.0.0.1", Internal},
		{"172.16.5.4", Internal},
		{"172.31.255.255", Internal},
		{"192.168.1.1", Internal},
		{"100.64.0.1", Internal},
		{"100.127.255.254", Internal},
		{"169.254.169.254", Internal},
		{"::ffff:169.254.169.254", Internal},
		{"::ffff:10.1.2.3", Internal},
		{"fe80::1", Internal},
		{"fe80::1%eth0", Internal},
		{"fc00::1", Internal},
		{"fd12:3456::1", Internal},
		{"fec0::1", Internal},
		{"224.0.0.1", Internal},
		{"239.255.255.250", Internal},
		{"ff02::1", Internal},
		{"ff05::2", Internal},
		{"255.255.255.255", Internal},
		{"240.0.0.1", Internal},
		{"192.0.0.8", Internal},
		{"192.0.2.1", Internal},
		{"198.18.0.1", Internal},
		{"198.51.100.7", Internal},
		{"203.0.113.9", Internal},
		{"2001:db8::1", Internal},
		{"100::1", Internal},
		{"::7f00:1", Internal},
		{"64:ff9b::7f00:1", Internal}, // NAT64 of 127.0.0.1: the gateway's own
		{"64:ff9b::a9fe:a9fe", Internal},
		{"64:ff9b:1::1", Internal},
		{"2002:7f00:1::1", Internal}, // 6to4 of 127.0.0.1
		{"2002:a00:1::1", Internal},  // 6to4 of 10.0.0.1
		{"8.8.8.8", Public},
		{"1.1.1.1", Public},
		{"11.0.0.1", Public},
		{"172.32.0.1", Public},
		{"100.128.0.1", Public},
		{"192.169.0.1", Public},
		{"::ffff:8.8.8.8", Public},
		{"2606:4700:4700::1111", Public},
		{"64:ff9b::808:808", Public},
		{"2002:808:808::1", Public},
	} {
		if got := ClassOf(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("ClassOf(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if got := ClassOf(netip.Addr{}); got != Machine {
		t.Errorf("ClassOf(the zero Addr) = %v, want machine, the most internal", got)
	}
}

func TestParseClass(t *testing.T) {
	for c := Machine; c <= Public; c++ {
		if back, err := ParseClass(c.String()); err != nil || back != c {
			t.Errorf("%v read back as %v, %v", c, back, err)
		}
	}
	if c, err := ParseClass("galactic"); err == nil || c != Public {
		t.Errorf("an unknown word: %v, %v; want an error and public, the narrowest", c, err)
	}
}

// What can be told of an address before it is dialled: literal addresses
// in every form a resolver reads, and localhost. Names are left to the
// dial. No address here is ever dialled.
func TestCheckReach(t *testing.T) {
	for _, tt := range []struct {
		url     string
		reach   Class
		refused bool
	}{
		{"http://127.0.0.1/f", Machine, false},
		{"http://127.0.0.1/f", Internal, true},
		{"http://127.0.0.1:8080/f", Public, true},
		{"http://localhost:8080/f", Public, true},
		{"http://LocalHost./f", Internal, true},
		{"http://a.b.localhost/f", Public, true},
		{"http://[::1]/f", Public, true},
		{"http://[::ffff:127.0.0.1]/f", Public, true},
		{"http://[::]/f", Public, true},
		{"http://0.0.0.0/f", Internal, true},
		{"http://[fe80::1%25eth0]/f", Public, true},
		{"http://10.1.2.3/f", Internal, false},
		{"http://10.1.2.3/f", Public, true},
		{"https://169.254.169.254/latest/meta-data/", Public, true},
		{"http://100.64.0.1/f", Public, true},
		{"http://[fc00::1]/f", Public, true},
		{"http://127.1/f", Public, true},
		{"http://2130706433/f", Public, true},
		{"http://0x7f.0.0.1/f", Public, true},
		{"http://0177.0.0.1/f", Public, true},
		{"http://0/f", Public, true},
		{"http://8.8.8.8/f", Public, false},
		{"http://[2606:4700:4700::1111]/f", Public, false},
		{"http://mirror.example/f", Public, false},
		{"http://localhost.example/f", Public, false},
		{"http://0x7g.0.0.1/f", Public, false}, // not a number: a name
	} {
		err := CheckReach(tt.url, tt.reach)
		if (err != nil) != tt.refused || (err != nil && !errors.Is(err, ErrRefused)) {
			t.Errorf("CheckReach(%s, %v) = %v; want refused %v", tt.url, tt.reach, err, tt.refused)
		}
	}
	err := CheckReach("http://127.0.0.1:8080/f?sig="+secret, Public)
	if want := "refused: 127.0.0.1 is an address of this machine, which a public server may not send idmd to"; err == nil || err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// hops returns the address of a trip that goes through the servers in
// order, each redirecting (/r?to=) to the next, the last serving /f.
func hops(srvs ...*httptest.Server) string {
	u := srvs[len(srvs)-1].URL + "/f"
	for i := len(srvs) - 2; i >= 0; i-- {
		u = srvs[i].URL + "/r?to=" + url.QueryEscape(u)
	}
	return u
}

// redirector serves data at /f, counting the requests there, and sends
// /r?to=URL to URL.
func redirector(data []byte) (http.Handler, *atomic.Int64) {
	file, n := counted(data)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/r" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		file.ServeHTTP(w, r)
	}), n
}

// Each server may send idmd only to addresses no more internal than its
// own, and what one allows narrows what the next may: a refused hop is a
// permanent error, and nothing is asked of the address refused.
func TestSource_Reach_Redirects(t *testing.T) {
	pretendNetworks(t)
	data := randomData(10_000, 30)
	srv := map[string]*httptest.Server{}
	files := map[string]*atomic.Int64{}
	for _, ip := range []string{"127.0.0.1", publicIP, internalIP} {
		h, n := redirector(data)
		srv[ip], files[ip] = servertest.HTTPAt(t, ip, h), n
	}
	const local = "127.0.0.1"
	for _, tt := range []struct {
		name    string
		chain   []string
		refused string // what the message says, when refused
	}{
		{"this machine to itself", []string{local, local}, ""},
		{"this machine to an internal network", []string{local, internalIP}, ""},
		{"this machine to a public server", []string{local, publicIP}, ""},
		{"internal to internal", []string{internalIP, internalIP}, ""},
		{"internal to public", []string{internalIP, publicIP}, ""},
		{"internal to this machine", []string{internalIP, local}, "redirected to 127.0.0.1, an address of this machine, which a server on an internal network may not send idmd to"},
		{"public to public", []string{publicIP, publicIP}, ""},
		{"public to internal", []string{publicIP, internalIP}, "redirected to 127.0.0.3, an address of an internal network, which a public server may not send idmd to"},
		{"public to this machine", []string{publicIP, local}, "redirected to 127.0.0.1, an address of this machine, which a public server may not send idmd to"},
		{"this machine, public, then internal", []string{local, publicIP, internalIP}, "which a public server may not send idmd to"},
		{"internal, public, then internal", []string{internalIP, publicIP, internalIP}, "which a public server may not send idmd to"},
		{"internal, internal, then this machine", []string{internalIP, internalIP, local}, "which a server on an internal network may not send idmd to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var path []*httptest.Server
			for _, ip := range tt.chain {
				path = append(path, srv[ip])
			}
			last := files[tt.chain[len(tt.chain)-1]]
			before := last.Load()
			c := open(t, newSource(t, hops(path...), Options{}))
			var buf bytes.Buffer
			err := c.Fetch(t.Context(), 100, 1000, &buf)
			if tt.refused == "" {
				if err != nil || !bytes.Equal(buf.Bytes(), data[100:1100]) {
					t.Fatalf("Fetch: %v; want the range", err)
				}
				return
			}
			checkErr(t, err, true, ErrRefused)
			if err != nil && !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("message %q, want it to say %q", err, tt.refused)
			}
			if got := last.Load() - before; got != 0 {
				t.Errorf("the address refused was asked %d times", got)
			}
		})
	}
}

// The central case, with the whole message: a public server redirecting
// to a server on this machine gets that server no request at all.
func TestSource_Reach_PublicRedirectToThisMachine(t *testing.T) {
	pretendNetworks(t)
	var asked atomic.Int64
	inside := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	public := servertest.HTTPAt(t, publicIP, http.RedirectHandler(inside.URL+"/f", http.StatusFound))
	_, err := open(t, newSource(t, public.URL+"/f", Options{})).Describe(t.Context())
	checkErr(t, err, true, ErrRefused)
	want := public.URL + "/f?sig=xxxxx: refused: " + public.URL + "/f?sig=xxxxx redirected to 127.0.0.1, an address of this machine, which a public server may not send idmd to"
	if err == nil || err.Error() != want {
		t.Errorf("message %q,\nwant %q", err, want)
	}
	if asked.Load() != 0 {
		t.Errorf("the server on this machine got %d requests", asked.Load())
	}
}

// A name is weighed by the address it resolves to, at the dial: a public
// server's redirect to a name of this machine is refused, and that
// server asked nothing.
func TestSource_Reach_RedirectToNameRefused(t *testing.T) {
	pretendNetworks(t)
	resolveTo(t, "inside.test", "127.0.0.1")
	data := randomData(1000, 32)
	h, asked := counted(data)
	inside := serve(t, h)
	_, port, _ := net.SplitHostPort(inside.Listener.Addr().String())
	public := servertest.HTTPAt(t, publicIP, http.RedirectHandler("http://inside.test:"+port+"/f", http.StatusFound))
	_, err := open(t, newSource(t, public.URL+"/f", Options{})).Describe(t.Context())
	checkErr(t, err, true, ErrRefused)
	if want := "redirected to inside.test (127.0.0.1), an address of this machine, which a public server may not send idmd to"; err != nil && !strings.Contains(err.Error(), want) {
		t.Errorf("message %q, want it to say %q", err, want)
	}
	if asked.Load() != 0 {
		t.Errorf("the server on this machine got %d requests", asked.Load())
	}

	// The same name given by the user is followed.
	c := open(t, newSource(t, "http://inside.test:"+port+"/f", Options{}))
	if _, err := c.Describe(t.Context()); err != nil || asked.Load() != 1 {
		t.Errorf("the user's own source: %v, %d requests", err, asked.Load())
	}
}

// A connection kept alive for a user's source on this machine is not
// there for a redirect from a public server to the same host and port:
// the redirect's reach has a pool of its own, so it dials, and the dial
// refuses.
func TestSource_Reach_KeptAliveConnectionNotReused(t *testing.T) {
	pretendNetworks(t)
	resolveTo(t, "inside.test", "127.0.0.1")
	data := randomData(10_000, 33)
	var requests, conns atomic.Int64
	inside := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mirror(data, "")(w, r)
	}))
	inside.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	inside.Start()
	t.Cleanup(inside.Close)
	_, port, _ := net.SplitHostPort(inside.Listener.Addr().String())
	target := "http://inside.test:" + port + "/f"
	public := servertest.HTTPAt(t, publicIP, http.RedirectHandler(target, http.StatusFound))

	client := NewClient()
	t.Cleanup(client.CloseIdleConnections)
	user := open(t, newSource(t, target, Options{Client: client}))
	if err := user.Fetch(t.Context(), 0, 100, io.Discard); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 1 || conns.Load() != 1 {
		t.Fatalf("%d requests on %d connections, want 1 on 1", requests.Load(), conns.Load())
	}
	// The connection is idle in the client's pool now, for inside.test
	// and the port.
	_, err := open(t, newSource(t, public.URL+"/f", Options{Client: client})).Describe(t.Context())
	checkErr(t, err, true, ErrRefused)
	if requests.Load() != 1 || conns.Load() != 1 {
		t.Errorf("the redirect reached the server on this machine: %d requests, %d connections", requests.Load(), conns.Load())
	}
	// The user's source still has its connection, and uses it.
	if err := user.Fetch(t.Context(), 100, 100, io.Discard); err != nil || requests.Load() != 2 || conns.Load() != 1 {
		t.Errorf("the user's source: %v, %d requests on %d connections; want 2 on 1", err, requests.Load(), conns.Load())
	}
}

// The address a redirect led to is asked again with the reach the
// redirect left, not the source's own: when its name later resolves to
// this machine (DNS rebinding), the next range is refused, and nothing
// is asked there.
func TestSource_Reach_RememberedRedirectKeepsItsReach(t *testing.T) {
	pretendNetworks(t)
	data := randomData(10_000, 34)
	good, servedGood := counted(data)
	evil, servedEvil := counted(data)
	port := twins(t, publicIP2, good, "127.0.0.1", evil)
	to := resolveTo(t, "next.test", publicIP2)
	public := servertest.HTTPAt(t, publicIP, http.RedirectHandler("http://next.test:"+port+"/f", http.StatusFound))
	client := NewClient()
	c := open(t, newSource(t, public.URL+"/f", Options{Client: client}))
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(t.Context(), 0, 10, io.Discard); err != nil || servedGood.Load() != 2 {
		t.Fatalf("Fetch: %v, %d requests to where the redirect led; want 2", err, servedGood.Load())
	}
	rebind(to, "127.0.0.1")
	client.CloseIdleConnections()
	err := c.Fetch(t.Context(), 10, 10, io.Discard)
	checkErr(t, err, true, ErrRefused)
	if servedEvil.Load() != 0 {
		t.Errorf("the rebound name's server on this machine got %d requests", servedEvil.Load())
	}
}

// A mirror a public server named (reach Public) whose name comes to
// resolve to this machine is refused at the dial.
func TestSource_Reach_LearnedSourceRebound(t *testing.T) {
	pretendNetworks(t)
	data := randomData(10_000, 35)
	good, _ := counted(data)
	evil, servedEvil := counted(data)
	port := twins(t, publicIP, good, "127.0.0.1", evil)
	to := resolveTo(t, "learned.test", publicIP)
	client := NewClient()
	c := open(t, newSource(t, "http://learned.test:"+port+"/f", Options{Client: client, Reach: Public}))
	if err := c.Fetch(t.Context(), 0, 10, io.Discard); err != nil {
		t.Fatal(err)
	}
	rebind(to, "127.0.0.1")
	client.CloseIdleConnections()
	err := c.Fetch(t.Context(), 10, 10, io.Discard)
	checkErr(t, err, true, ErrRefused)
	if want := "refused: learned.test (127.0.0.1) is an address of this machine, which a public server may not send idmd to"; err != nil && !strings.HasSuffix(err.Error(), want) {
		t.Errorf("message %q, want it to end %q", err, want)
	}
	if servedEvil.Load() != 0 {
		t.Errorf("the server on this machine got %d requests", servedEvil.Load())
	}
}

// The mirrors an answer announces come with what the announcing server
// allows, narrowed along the redirects that led to it.
func TestSource_Reach_Duplicates(t *testing.T) {
	pretendNetworks(t)
	data := randomData(1000, 36)
	announcing := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://mirror.example/f>; rel=duplicate`)
		mirror(data, "")(w, r)
	}
	local := serve(t, http.HandlerFunc(announcing))
	internal := servertest.HTTPAt(t, internalIP, http.HandlerFunc(announcing))
	public := servertest.HTTPAt(t, publicIP, http.HandlerFunc(announcing))
	redir, _ := redirector(data)
	toPublic := serve(t, redir).URL + "/r?to=" + url.QueryEscape(public.URL+"/f")
	for _, tt := range []struct {
		name string
		url  string
		opt  Options
		want Class
	}{
		{"a user's source on this machine", local.URL + "/f", Options{}, Machine},
		{"a server on an internal network", internal.URL + "/f", Options{}, Internal},
		{"a public server", public.URL + "/f", Options{}, Public},
		{"this machine, redirected to a public server", toPublic, Options{}, Public},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan Class, 1)
			tt.opt.OnDuplicates = func(_ []string, reach Class) { got <- reach }
			if _, err := open(t, newSource(t, tt.url, tt.opt)).Describe(t.Context()); err != nil {
				t.Fatal(err)
			}
			if r := <-got; r != tt.want {
				t.Errorf("announced with reach %v, want %v", r, tt.want)
			}
		})
	}
}

// The Metalink a public mirror points to on this machine is not fetched:
// the mirror is taken without its pieces, as with any Metalink that
// cannot be had.
func TestSource_Reach_DescribedByNotFetched(t *testing.T) {
	pretendNetworks(t)
	data := randomData(1000, 37)
	var asked atomic.Int64
	inside := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	public := servertest.HTTPAt(t, publicIP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+inside.URL+`/f.meta4>; rel=describedby; type="application/metalink4+xml"`)
		mirror(data, "")(w, r)
	}))
	c := open(t, newSource(t, public.URL+"/f", Options{}))
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 0 || c.ListsPieces() {
		t.Errorf("the Metalink on this machine was asked for %d times; pieces %v", asked.Load(), c.ListsPieces())
	}
}

// The user's proxy is dialled whatever a source's reach, and carries a
// public mirror's ranges; a literal address beyond reach is refused
// before the proxy is asked.
func TestSource_Reach_Proxy(t *testing.T) {
	pretendNetworks(t)
	data := randomData(10_000, 38)
	proxy, connects := socks5(t) // on this machine
	client, err := NewClientWith(ClientOptions{Proxy: "socks5://" + proxy})
	if err != nil {
		t.Fatal(err)
	}
	public := servertest.HTTPAt(t, publicIP, mirror(data, ""))
	c := open(t, newSource(t, public.URL+"/f", Options{Client: client, Reach: Public}))
	if err := c.Fetch(t.Context(), 0, 100, io.Discard); err != nil || connects.Load() == 0 {
		t.Fatalf("through the proxy: %v, %d connects", err, connects.Load())
	}
	before := connects.Load()
	h, asked := counted(data)
	inside := serve(t, h)
	_, err = open(t, newSource(t, inside.URL+"/f", Options{Client: client, Reach: Public})).Describe(t.Context())
	checkErr(t, err, true, ErrRefused)
	if connects.Load() != before || asked.Load() != 0 {
		t.Errorf("%d connects through the proxy, %d requests to this machine; want none", connects.Load()-before, asked.Load())
	}
}

// A client a caller built itself is not NewClient's: nothing is checked,
// and the mirrors its answers announce count as a public server's.
func TestSource_Reach_OwnClient(t *testing.T) {
	data := randomData(1000, 39)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://mirror.example/f>; rel=duplicate`)
		mirror(data, "")(w, r)
	}))
	got := make(chan Class, 1)
	opt := Options{Client: &http.Client{}, Reach: Public, OnDuplicates: func(_ []string, reach Class) { got <- reach }}
	if _, err := open(t, newSource(t, srv.URL+"/f", opt)).Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != Public {
		t.Errorf("announced with reach %v, want public", r)
	}
}

func TestNewClient_ReachOfPlainRequests(t *testing.T) {
	pretendNetworks(t)
	data := randomData(100, 40)
	public := servertest.HTTPAt(t, publicIP, mirror(data, ""))
	h, asked := counted(data)
	inside := serve(t, h)
	client := NewClient()
	t.Cleanup(client.CloseIdleConnections)
	// A request with no reach in its context is a user's: anywhere.
	resp, err := client.Get(inside.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// One with a reach is held to it, and learns its server's class.
	for _, tt := range []struct {
		url     string
		refused bool
		onward  Class
	}{
		{inside.URL + "/f", true, 0},
		{public.URL + "/f", false, Public},
	} {
		ctx, trip := WithReach(t.Context(), Internal)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
		resp, err := client.Do(req)
		if tt.refused {
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%s: %v, want refused", tt.url, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if trip.Onward() != tt.onward {
			t.Errorf("%s: onward %v, want %v", tt.url, trip.Onward(), tt.onward)
		}
	}
	if asked.Load() != 1 {
		t.Errorf("the server on this machine got %d requests, want the plain one", asked.Load())
	}
}

func TestNamedBy(t *testing.T) {
	for _, tt := range []struct {
		raw   string
		reach Class
		want  Class
	}{
		{"http://127.0.0.1:8080/x.meta4", Machine, Machine},
		{"http://localhost/x.meta4", Machine, Machine},
		{"http://10.1.2.3/x.meta4", Machine, Internal},
		{"http://[fe80::1]/x.meta4", Machine, Internal},
		{"http://8.8.8.8/x.meta4", Machine, Public},
		{"http://127.0.0.1/x.meta4", Public, Public}, // a public server named it
		{"http://mirror.example/x.meta4", Machine, Public},
		{"http://%zz/", Machine, Public},
	} {
		if got := NamedBy(tt.raw, tt.reach); got != tt.want {
			t.Errorf("NamedBy(%q, %v) = %v, want %v", tt.raw, tt.reach, got, tt.want)
		}
	}
}
