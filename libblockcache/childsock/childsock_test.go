package childsock

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func TestEncodeLayout(t *testing.T) {
	var out [ResponseSize]byte
	a := blockcache.Answer{IPv4: netip.MustParseAddr("10.0.0.9"), IPv6: netip.MustParseAddr("fd00::9")}
	a.Verdict = verdict.Verdict{Action: verdict.Block, Table: verdict.TableExact}
	a.Tier = verdict.TierLRU
	Encode(a, &out)
	want := append([]byte{1, 3, 1, 3, 10, 0, 0, 9, 0xfd}, make([]byte, 14)...)
	want = append(want, 9)
	if !bytes.Equal(out[:24], want) || !bytes.Equal(out[24:], make([]byte, ResponseSize-24)) {
		t.Errorf("block: % x", out)
	}

	// A server of the longest allowed length keeps its terminating NUL, and
	// the previous answer's bytes are gone.
	server := "192.0.2.53#" + strings.Repeat("5", verdict.MaxServerLen-len("192.0.2.53#"))
	a = blockcache.Answer{}
	a.Verdict = verdict.Verdict{Action: verdict.Forward, Table: verdict.TableDNSBlock, Server: server}
	Encode(a, &out)
	if out[0] != 2 || out[1] != 2 || out[3] != 0 || !bytes.Equal(out[4:24], make([]byte, 20)) {
		t.Errorf("forward header: % x", out[:24])
	}
	if got := string(out[24 : 24+len(server)]); got != server || out[ResponseSize-1] != 0 {
		t.Errorf("server %q, last byte %d", got, out[ResponseSize-1])
	}
}

// fixtureCache is the library over a real list of testlist.Fixture,
// closed with the test.
func fixtureCache(t testing.TB) *blockcache.Cache {
	t.Helper()
	path, _ := testlist.New(t, testlist.Fixture...)
	cfg := config.Default()
	cfg.DBFile = path
	c, err := blockcache.Open(context.Background(), cfg, ratelog.New(io.Discard, 100, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve starts Serve on one end of a real socketpair, as the dnsmasq
// parent does, and returns the child's end.
func serve(t *testing.T) (child *os.File, done chan struct{}) {
	t.Helper()
	c := fixtureCache(t)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "parent"), os.NewFile(uintptr(fds[1]), "child")
	t.Cleanup(func() { child.Close() })
	done = make(chan struct{})
	go func() { Serve(context.Background(), c, parent); close(done) }()
	return child, done
}

// ask sends a lookup of name; request sends any request.
func ask(t *testing.T, f *os.File, name string) [ResponseSize]byte {
	t.Helper()
	return request(t, f, string(KindLookup)+name)
}

func request(t *testing.T, f *os.File, req string) [ResponseSize]byte {
	t.Helper()
	if _, err := f.Write(append([]byte{byte(len(req) >> 8), byte(len(req))}, req...)); err != nil {
		t.Fatal(err)
	}
	var resp [ResponseSize]byte
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(f, resp[:]); err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	return resp
}

// One connection carries many questions, answered in order, each exactly
// as the library answers it.
func TestServeAnswersInOrder(t *testing.T) {
	child, _ := serve(t)
	for _, tc := range []struct {
		name   string
		action verdict.Action
		server string
	}{
		{"exact.example", verdict.Block, ""},
		{"unlisted.example", verdict.Pass, ""},
		{"www.family.example", verdict.Forward, "1.1.1.3"},
		{"ads1.example", verdict.Block, ""},
		{"exact.example", verdict.Block, ""}, // now from the LRU
	} {
		r := ask(t, child, tc.name)
		server := string(bytes.TrimRight(r[24:], "\x00"))
		if verdict.Action(r[0]) != tc.action || server != tc.server {
			t.Errorf("%s: action %d server %q, want %v %q", tc.name, r[0], server, tc.action, tc.server)
		}
		if tc.action == verdict.Block && r[3]&1 == 0 {
			t.Errorf("%s: blocked without an IPv4 sinkhole", tc.name)
		}
	}
}

// A CNAME check ("question NUL target", of a reply or of dnsmasq's cache)
// blocks, with the target's addresses for a reply, only when the question
// passes and the target is blocked. Unknown kinds and malformed requests
// get Pass and the connection goes on.
func TestServeCNAME(t *testing.T) {
	child, _ := serve(t)
	for _, kind := range []string{string(KindCNAME), string(KindCachedCNAME)} {
		r := request(t, child, kind+"metrics.news.example\x00x.deep.tracker.net")
		if verdict.Action(r[0]) != verdict.Block || kind == string(KindCNAME) && (r[4] != 10 || r[7] != 2) {
			t.Errorf("%s cloaked tracker: action %d ipv4 % x", kind, r[0], r[4:8])
		}
		for _, req := range []string{"www.shop.example\x00edge.cdn.example", "allowed.tracker.net\x00x.tracker.net", "x.tracker.net"} {
			if r := request(t, child, kind+req); verdict.Action(r[0]) != verdict.Pass {
				t.Errorf("%s%q: action %d, want pass", kind, req, r[0])
			}
		}
	}
	if r := request(t, child, "Zx.tracker.net"); verdict.Action(r[0]) != verdict.Pass {
		t.Errorf("unknown kind: action %d, want pass", r[0])
	}
	if r := ask(t, child, "x.tracker.net"); verdict.Action(r[0]) != verdict.Block {
		t.Errorf("after odd requests: action %d", r[0])
	}
}

// A name in dnsmasq's escaped form can be twice as long as its octets;
// the child must be able to send the longest one.
func TestServeLongEscapedName(t *testing.T) {
	child, _ := serve(t)
	label := strings.Repeat("\x01\x01", 58) // 58 NUL octets, 116 bytes: 247 octets in all
	name := strings.Repeat(label+".", 4) + "tracker.net"
	if len(name) <= 255 {
		t.Fatalf("test name only %d bytes", len(name))
	}
	if r := ask(t, child, name); verdict.Action(r[0]) != verdict.Block {
		t.Errorf("%d-byte escaped subdomain of tracker.net: action %d", len(name), r[0])
	}
}

// Names the library refuses (empty, or a 255-byte one with a label too
// long) get a Pass answer, and the connection goes on.
func TestServeBadNamesPass(t *testing.T) {
	child, _ := serve(t)
	for _, name := range []string{"", strings.Repeat("a", 255), strings.Repeat("a.", RequestMax/2)[:RequestMax-1]} { // the longest request
		if r := ask(t, child, name); verdict.Action(r[0]) != verdict.Pass {
			t.Errorf("%d-byte name: action %d", len(name), r[0])
		}
	}
	if r := ask(t, child, "exact.example"); verdict.Action(r[0]) != verdict.Block {
		t.Errorf("after bad names: action %d", r[0])
	}
}

// A length beyond RequestMax is not from our child; Serve stops rather than
// read an unknown framing.
func TestServeEndsOnAnOverlongRequest(t *testing.T) {
	child, done := serve(t)
	if _, err := child.Write([]byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after a 65535-byte length")
	}
}

// A child that dies mid-request must not leave a goroutine or a
// descriptor behind: Serve returns and closes its end.
func TestServeEndsWhenTheChildGoes(t *testing.T) {
	child, done := serve(t)
	if _, err := child.Write([]byte{0, 20, 'a', 'b'}); err != nil { // 2 of 20 bytes
		t.Fatal(err)
	}
	child.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after the child closed its end")
	}
}

// asciiUpper is DNS's case folding: ASCII letters only, every other octet
// (escapes, UTF-8) as it is.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Any request a child could send, well formed or not, gets an answer: the
// same answer when asked again (then from the LRU, first from the list)
// and when its names are in upper case. Arbitrary octets reach the name
// rules, the membership filter, the LRU, SQL and the regex rules.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{"Lexact.example", "La.b.tracker.net", "LAds1.x", "Lwww.family.example",
		"Cq.example\x00x.tracker.net", "Kq\x00exact.example", "C\x00", "L", "", "Z", "L.", "L..tracker.net",
		"L" + strings.Repeat("\x01\x01", 120) + ".tracker.net", "Lexact.example."} {
		f.Add(s)
	}
	c := fixtureCache(f)
	ctx := context.Background()
	same := func(a, b blockcache.Answer) bool { // the LRU keeps no rule name: the log's, not the answer's
		a.Verdict.Rule, b.Verdict.Rule = "", ""
		return a.Verdict == b.Verdict && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6
	}
	f.Fuzz(func(t *testing.T, req string) {
		if len(req) > RequestMax {
			return
		}
		stuck := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("stuck on %q", req)) }) // a hang as a crash, with its input
		defer stuck.Stop()
		a := answer(ctx, c, req)
		var out [ResponseSize]byte
		Encode(a, &out)
		if again := answer(ctx, c, req); !same(a, again) {
			t.Errorf("%q: %+v, then %+v", req, a, again)
		}
		if req == "" {
			return
		}
		if up := answer(ctx, c, req[:1]+asciiUpper(req[1:])); !same(a, up) { // the kind as it is
			t.Errorf("%q: %+v, in upper case %+v", req, a, up)
		}
	})
}
