package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// expect is one question and the summary of the answer it should get.
type expect struct {
	name  string
	qtype uint16
	want  string
}

// summary renders a response as "RCODE [answers...] [EDE n]".
func summary(r *dns.Msg) string {
	parts := []string{dns.RcodeToString[r.Rcode]}
	var ans []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			ans = append(ans, "A "+v.A.String())
		case *dns.AAAA:
			ans = append(ans, "AAAA "+v.AAAA.String())
		case *dns.TXT:
			ans = append(ans, "TXT "+strings.Join(v.Txt, " "))
		default:
			ans = append(ans, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	sort.Strings(ans)
	parts = append(parts, ans...)
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if ede, ok := e.(*dns.EDNS0_EDE); ok {
				parts = append(parts, fmt.Sprintf("EDE %d", ede.InfoCode))
			}
		}
	}
	return strings.Join(parts, " ")
}

func TestAnswersUDPAndTCP(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	sqlite3(t, db, `INSERT INTO domain_dns_allow VALUES ('usual.tracker.net', '#')`) // dnsmasq's usual servers
	d := startDnsmasq(t, opts{db: db, upstream: up, filter: filter,
		extra: []string{"--db-block-ipv4=10.1.1.1", "--db-block-ttl=7"}})
	cases := []expect{
		{"exact.example", dns.TypeA, "NOERROR A 10.1.1.1 EDE 15"},
		{"exact.example", dns.TypeAAAA, "NOERROR AAAA :: EDE 15"},
		{"exact.example", dns.TypeMX, "NOERROR EDE 15"},
		{"exact.example", dns.TypeTXT, "NOERROR EDE 15"},
		{"exact.example", dns.TypeANY, "NOERROR A 10.1.1.1 AAAA :: EDE 15"},
		{"sub.exact.example", dns.TypeA, "NOERROR A 192.0.2.1"}, // exact is exact
		{"ip.exact.example", dns.TypeANY, "NOERROR A 10.0.0.9 AAAA fd00::9 EDE 15"},
		{"tracker.net", dns.TypeA, "NOERROR A 10.1.1.1 EDE 15"},
		{"a.b.tracker.net", dns.TypeA, "NOERROR A 10.1.1.1 EDE 15"},
		{"Mixed.Case.Tracker.NET", dns.TypeA, "NOERROR A 10.1.1.1 EDE 15"},
		{"x.deep.tracker.net", dns.TypeA, "NOERROR A 10.0.0.2 EDE 15"},
		{"nottracker.net", dns.TypeA, "NOERROR A 192.0.2.1"},
		{"ads1.example.org", dns.TypeA, "NOERROR A 10.1.1.1 EDE 15"},
		{"ads1.example.org", dns.TypeTXT, "NOERROR EDE 15"},
		{"allowed.tracker.net", dns.TypeA, "NOERROR A 198.51.100.7"},
		{"www.allowed.tracker.net", dns.TypeTXT, "NOERROR TXT upstream 198.51.100.7"},
		{"usual.tracker.net", dns.TypeA, "NOERROR A 192.0.2.1"}, // allowed, resolved as usual
		{"www.usual.tracker.net", dns.TypeAAAA, "NOERROR AAAA 2001:db8::53"},
		{"family.example", dns.TypeA, "NOERROR A 198.51.100.7"},
		{"unconfigured.example", dns.TypeA, "NOERROR A 192.0.2.1"}, // no server= for it: forwarded normally
		{"unlisted.example", dns.TypeA, "NOERROR A 192.0.2.1"},
		{"unlisted.example", dns.TypeMX, "NOERROR"},
	}
	for _, c := range cases {
		for _, network := range []string{"udp", "tcp"} {
			r := d.mustQuery(t, network, c.name, c.qtype)
			if got := summary(r); got != c.want {
				t.Errorf("%s %s %s = %q, want %q", network, c.name, dns.TypeToString[c.qtype], got, c.want)
			}
			if strings.Contains(c.want, "EDE 15") {
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 7 {
						t.Errorf("%s %s: TTL %d, want db-block-ttl 7", network, c.name, rr.Header().Ttl)
					}
				}
			}
		}
	}
	if n := up.count("a.b.tracker.net"); n != 0 {
		t.Errorf("blocked name reached upstream %d times", n)
	}
	if n := filter.count("allowed.tracker.net"); n == 0 {
		t.Error("dns_allow name did not reach its server")
	}
	if n := up.count("allowed.tracker.net"); n != 0 {
		t.Error("dns_allow name went to the default upstream")
	}
	d.waitLog(t, 2*time.Second, "blockcache/domain", "a.b.tracker.net is 10.1.1.1")
	d.waitLog(t, 2*time.Second, "no server=127.0.0.1#1 configured")
	if n := up.count("usual.tracker.net"); n == 0 || strings.Contains(d.logText(), "no server=# configured") {
		t.Errorf("an allow rule to \"#\": asked the usual upstream %d times; log %q", n, d.logText())
	}
	// Malformed and over-long names never crash it.
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example"
	for _, n := range []string{long, "bad\\032name.example", "_srv._tcp.tracker.net"} {
		if _, err := d.query(t, "udp", n, dns.TypeA); err != nil {
			t.Errorf("query %q: %v", n, err)
		}
	}
	if r := d.mustQuery(t, "udp", "_srv._tcp.tracker.net", dns.TypeSRV); summary(r) != "NOERROR EDE 15" {
		t.Errorf("SRV under a blocked domain: %s", summary(r))
	}
}

// A query may carry any octet in a label. A subdomain of a listed domain
// is blocked whatever its first labels hold, over UDP and over a forked TCP
// child alike, or an odd label would be the way around the list (malware
// with wildcard DNS under a listed domain needs nothing else).
func TestOddLabelsCannotBypassTheList(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	d := startDnsmasq(t, opts{db: db, upstream: up})
	nuls := strings.Repeat("\\000", 58) // 58 NUL octets: dnsmasq escapes each, 116 bytes
	escaped := strings.Repeat(nuls+".", 4) + "tracker.net"
	blocked := []string{"we!rd.tracker.net", "bad\\032name.tracker.net", "a\\.b.tracker.net",
		"\\195\\188.tracker.net", "x\\001y.tracker.net", escaped}
	passed := []string{"exa\\032mple.exact.example", "tracker\\.net"} // exact is exact; one label
	for _, network := range []string{"udp", "tcp"} {
		for _, n := range blocked {
			if got := summary(d.mustQuery(t, network, n, dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
				t.Errorf("%s %.40s A = %q, want the sinkhole", network, n, got)
			}
			if c := up.count(n); c != 0 {
				t.Errorf("%s %.40s reached upstream %d times", network, n, c)
			}
		}
		for _, n := range passed {
			if got := summary(d.mustQuery(t, network, n, dns.TypeA)); got != "NOERROR A 192.0.2.1" {
				t.Errorf("%s %s A = %q, want it forwarded", network, n, got)
			}
		}
	}
	if strings.Contains(d.logText(), "no verdict from parent") {
		t.Error("a TCP child could not ask for a verdict")
	}
}

// The verdict comes before dnsmasq's own names (hosts files, address=,
// DHCP leases), as the list comes before its cache: a listed name is
// blocked even when dnsmasq knows it. An allow rule lets dnsmasq's own
// answer through, since dnsmasq answers what it knows before it forwards.
func TestListOutranksDnsmasqsOwnNames(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("192.168.1.1 x.tracker.net\n192.168.1.2 allowed.tracker.net\n192.168.1.3 printer.lan\n"), 0o644)
	d := startDnsmasq(t, opts{db: db, upstream: up, filter: filter, extra: []string{"--addn-hosts=" + hosts}})
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []expect{
			{"x.tracker.net", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"},
			{"allowed.tracker.net", dns.TypeA, "NOERROR A 192.168.1.2"},
			{"printer.lan", dns.TypeA, "NOERROR A 192.168.1.3"},
		} {
			if got := summary(d.mustQuery(t, network, c.name, c.qtype)); got != c.want {
				t.Errorf("%s %s: %s, want %s", network, c.name, got, c.want)
			}
		}
	}
}

// --dumpfile with --dumpmask=0x0002 writes every reply dnsmasq sends to
// a client into a pcap file, blocked ones included: an operator tracing a
// client's complaint sees what it was told.
func TestBlockedRepliesInTheDumpFile(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	dump := filepath.Join(t.TempDir(), "replies.pcap")
	d := startDnsmasq(t, opts{db: db, upstream: up, extra: []string{"--dumpfile=" + dump, "--dumpmask=0x0002"}})
	for name, want := range map[string]string{"dumped.tracker.net": "NOERROR A 0.0.0.0 EDE 15", "dumped.example": "NOERROR A 192.0.2.1"} {
		if got := summary(d.mustQuery(t, "udp", name, dns.TypeA)); got != want {
			t.Fatalf("%s: %s", name, got)
		}
	}
	// dnsmasq may write a reply to the dump after sending it (2.91 does for
	// forwarded ones), so the client can be told before the file is.
	for _, wire := range []string{"\x06dumped\x07tracker\x03net\x00", "\x06dumped\x07example\x00"} {
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			b, err := os.ReadFile(dump)
			if err == nil && bytes.Contains(b, []byte(wire)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reply for %q in the dump after 2 s (%d bytes, %v)", wire, len(b), err)
			}
		}
	}
}

// keptTCP is one TCP connection to d that carries many queries, as
// resolvers and dig +keepopen use it.
func keptTCP(t *testing.T, d *daemon) func(name string, qtype uint16) string {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second}
	conn, err := c.Dial(fmt.Sprintf("127.0.0.1:%d", d.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func(name string, qtype uint16) string {
		t.Helper()
		r, _, err := c.ExchangeWithConn(question(name, qtype), conn)
		if err != nil {
			t.Fatalf("%s over the kept connection: %v", name, err)
		}
		return summary(r)
	}
}

// A TCP connection carries many queries, whatever the first one's verdict.
// dnsmasq 2.90 reads two variables that only its cache lookup sets after
// each answer: left unset by a blocked first answer, they closed the
// connection after it (as after a stale answer), or could add EDE 17
// (filtered) to it.
func TestTCPConnectionCarriesManyQueries(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	d := startDnsmasq(t, opts{db: db, upstream: up})
	ask := keptTCP(t, d)
	for _, q := range []expect{
		{"first.tracker.net", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"},
		{"second.tracker.net", dns.TypeAAAA, "NOERROR AAAA :: EDE 15"},
		{"unlisted.example", dns.TypeA, "NOERROR A 192.0.2.1"},
		{"third.tracker.net", dns.TypeMX, "NOERROR EDE 15"},
		{"exact.example", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"},
		{"other.example", dns.TypeA, "NOERROR A 192.0.2.1"},
	} {
		if got := ask(q.name, q.qtype); got != q.want {
			t.Errorf("%s %s: %s, want %s", q.name, dns.TypeToString[q.qtype], got, q.want)
		}
	}
}

// allStopped reports whether every thread of pid is stopped (state T).
func allStopped(t *testing.T, pid int) bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		// the state follows the command name, which is in parentheses
		if i := bytes.LastIndexByte(b, ')'); err != nil || i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// A TCP child waits at most 2 s for its parent's verdict, then resolves
// the name normally (fail open, logged). The parent's answer may still
// come; the child must not read it as the answer to its next question, or
// every later query of that connection gets the verdict of the one before
// (an unlisted name blocked, a listed one let through). The parent is
// stopped with SIGSTOP to be late; its forked child runs on.
func TestTCPChildOutlivesALateParent(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	d := startDnsmasq(t, opts{db: db, upstream: up})
	t.Cleanup(func() { syscall.Kill(d.pid, syscall.SIGCONT) }) // before d.stop
	kept := keptTCP(t, d)
	ask := func(name string) string { t.Helper(); return kept(name, dns.TypeA) }
	if got := ask("a.tracker.net"); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("before: %s", got)
	}
	if err := syscall.Kill(d.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A stop reaches a process's threads one by one: wait until none of
	// them (Go's, which answer the child, included) can run.
	for deadline := time.Now().Add(2 * time.Second); !allStopped(t, d.pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dnsmasq's threads did not all stop")
		}
	}
	start := time.Now()
	got := ask("late.tracker.net") // no verdict in time: resolved normally
	if waited := time.Since(start); got != "NOERROR A 192.0.2.1" || waited < 1500*time.Millisecond {
		t.Errorf("with the parent stopped: %s after %v, want it forwarded after the child's 2 s wait", got, waited)
	}
	syscall.Kill(d.pid, syscall.SIGCONT)
	d.waitLog(t, 2*time.Second, "no verdict from parent for late.tracker.net")
	d.waitLog(t, 2*time.Second, "no verdict from the parent (none within 2000 ms, or its socket failed); this TCP connection's later queries resolve normally")
	time.Sleep(200 * time.Millisecond) // the parent's late answer, if it is to come, is sent by now
	for _, n := range []string{"unlisted.example", "next.tracker.net"} {
		if got := ask(n); got != "NOERROR A 192.0.2.1" {
			t.Errorf("%s after the late answer: %s, want it resolved normally (this connection's child gave up on its parent)", n, got)
		}
	}
	// A new connection has a new child, and its verdicts.
	if got := summary(d.mustQuery(t, "tcp", "b.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Errorf("a new connection: %s", got)
	}
}

// A tracker served under a first-party name (CNAME cloaking) is blocked
// when the upstream's reply reaches it, at any depth of the chain, over UDP
// and TCP; nothing of that reply is cached. An allow rule for the question
// outranks its chain, and db-cname=off turns the check off.
func TestCNAMECloaking(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	up.chain("metrics.news.example", "x.deep.tracker.net")
	up.chain("a.shop.example", "b.cdn.example", "c.cdn.example", "exact.example")
	up.chain("www.shop.example", "edge.cdn.example")
	up.chain("x\\010fake-log-line.news.example", "x.tracker.net") // a newline in a label
	filter.chain("allowed.tracker.net", "x.tracker.net")
	sqlite3(t, db, `INSERT INTO domain_dns_allow VALUES ('usual.tracker.net', '#')`)
	up.chain("usual.tracker.net", "y.tracker.net")
	d := startDnsmasq(t, opts{db: db, upstream: up, filter: filter, extra: []string{"--log-queries"}})
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []expect{
			{"metrics.news.example", dns.TypeA, "NOERROR A 10.0.0.2 EDE 15"}, // the target's own address
			{"metrics.news.example", dns.TypeAAAA, "NOERROR AAAA :: EDE 15"},
			{"metrics.news.example", dns.TypeTXT, "NOERROR EDE 15"},
			{"a.shop.example", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"}, // third link of the chain
			{"www.shop.example", dns.TypeA, "NOERROR A 192.0.2.1 CNAME"},
			{"allowed.tracker.net", dns.TypeA, "NOERROR A 198.51.100.7 CNAME"},
			{"usual.tracker.net", dns.TypeA, "NOERROR A 192.0.2.1 CNAME"}, // allowed: left alone too
		} {
			for i := range 2 { // the second time too: the blocked reply was not cached
				if got := summary(d.mustQuery(t, network, c.name, c.qtype)); got != c.want {
					t.Errorf("%s %s %s (#%d) = %q, want %q", network, c.name, dns.TypeToString[c.qtype], i+1, got, c.want)
				}
			}
		}
	}
	d.waitLog(t, 2*time.Second, "blockcache/cname metrics.news.example is 10.0.0.2")
	d.waitLog(t, 2*time.Second, "metrics.news.example is blocked by its CNAME x.deep.tracker.net")
	if got := summary(d.mustQuery(t, "udp", "x\\010fake-log-line.news.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Errorf("a newline in the question: %q, want the sinkhole", got)
	}
	d.waitLog(t, 2*time.Second, "blockcache: <name unprintable> is blocked by its CNAME x.tracker.net")
	if n := up.count("metrics.news.example"); n != 12 {
		t.Errorf("metrics.news.example asked upstream %d times, want 12 (never answered from the cache)", n)
	}

	// A chain dnsmasq cached while its target was unlisted is blocked as
	// soon as the target is listed: the cached answer gives way to the
	// upstream, whose reply is then checked.
	up.chain("later.news.example", "soon.cdn.example")
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(d.mustQuery(t, network, "later.news.example", dns.TypeA)); got != "NOERROR A 192.0.2.1 CNAME" {
			t.Fatalf("%s later.news.example before the listing = %q", network, got)
		}
	}
	asked := up.count("later.news.example")
	if got := summary(d.mustQuery(t, "udp", "later.news.example", dns.TypeA)); got != "NOERROR A 192.0.2.1 CNAME" || up.count("later.news.example") != asked {
		t.Fatalf("the chain was not answered from dnsmasq's cache (%q, upstream asked %d times)", got, up.count("later.news.example"))
	}
	sqlite3(t, db, `INSERT INTO domain VALUES ('soon.cdn.example', NULL, NULL)`)
	d.waitAnswer(t, 2*time.Second, "later.news.example", "NOERROR A 0.0.0.0 EDE 15", "listing the cached chain's target")
	if got := summary(d.mustQuery(t, "tcp", "later.news.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Errorf("tcp later.news.example after the listing = %q", got)
	}
	// Every blocked reply is counted once, the rechecks of cached chains
	// not at all: 12 + 4 + 1 above, and later.news.example twice.
	if err := syscall.Kill(d.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, 2*time.Second, "cname blocks 19;")

	off := startDnsmasq(t, opts{db: db, upstream: up, extra: []string{"--db-cname=off"}})
	if got := summary(off.mustQuery(t, "udp", "metrics.news.example", dns.TypeA)); got != "NOERROR A 192.0.2.1 CNAME" {
		t.Errorf("db-cname=off: %q, want the upstream's answer", got)
	}
}

// The patched dnsmasq must be able to replace Debian's under an existing
// configuration: it has the same compile-time features, and starts and
// blocks with DNSSEC validation on. (Forwarded names, validated, are in
// TestDNSSECThroughForkedChildren, which has an upstream that signs.)
func TestDebianFeaturesAndDNSSEC(t *testing.T) {
	out := versionText(t)
	for _, f := range []string{" DBus ", " IDN2 ", " conntrack ", " nftset ", " DNSSEC "} {
		if !strings.Contains(out, f) {
			t.Errorf("compile-time options lack%s(Debian's binary has it): %s", f, out)
		}
	}
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	d := startDnsmasq(t, opts{db: db, upstream: up, extra: []string{"--dnssec",
		"--trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"}})
	for _, network := range []string{"udp", "tcp"} {
		for name, want := range map[string]string{
			"x.tracker.net":    "NOERROR A 0.0.0.0 EDE 15",
			"ip.exact.example": "NOERROR A 10.0.0.9 EDE 15",
		} {
			if got := summary(d.mustQuery(t, network, name, dns.TypeA)); got != want {
				t.Errorf("%s %s with DNSSEC on = %q, want %q", network, name, got, want)
			}
		}
	}
	if n := up.count("x.tracker.net"); n != 0 {
		t.Errorf("a blocked name reached the upstream %d times", n)
	}
}

func TestNXDOMAINWithoutSinkhole(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, upstream: up, extra: []string{"--db-block-ipv4=none", "--db-block-ipv6=none"}})
	for _, c := range []expect{
		{"x.tracker.net", dns.TypeA, "NXDOMAIN EDE 15"},
		{"x.tracker.net", dns.TypeMX, "NXDOMAIN EDE 15"},
		{"ip.exact.example", dns.TypeA, "NOERROR A 10.0.0.9 EDE 15"}, // per-rule address still answers
		{"ip.exact.example", dns.TypeMX, "NOERROR EDE 15"},           // and makes other types NODATA
		{"x.deep.tracker.net", dns.TypeAAAA, "NOERROR EDE 15"},       // has an IPv4 only
	} {
		for _, network := range []string{"udp", "tcp"} {
			if got := summary(d.mustQuery(t, network, c.name, c.qtype)); got != c.want {
				t.Errorf("%s %s %s = %q, want %q", network, c.name, dns.TypeToString[c.qtype], got, c.want)
			}
		}
	}
}

// A sinkhole address is an IN record. A question of another class (CH,
// HS) for a listed name is blocked all the same, but with no records: an
// IN record in the answer to a CH question is a malformed reply. A
// question of class ANY gets the addresses.
func TestQuestionsOfOtherClasses(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	for _, c := range []struct {
		extra []string
		cases []expect
	}{
		{nil, []expect{
			{"x.tracker.net", dns.TypeA, "CH: NOERROR EDE 15"},
			{"x.tracker.net", dns.TypeANY, "HS: NOERROR EDE 15"},
			{"exact.example", dns.TypeTXT, "CH: NOERROR EDE 15"},
			{"x.tracker.net", dns.TypeA, "ANY: NOERROR A 0.0.0.0 EDE 15"},
			{"x.tracker.net", dns.TypeANY, "ANY: NOERROR A 0.0.0.0 AAAA :: EDE 15"},
		}},
		{[]string{"--db-block-ipv4=none", "--db-block-ipv6=none"}, []expect{
			{"x.tracker.net", dns.TypeA, "CH: NXDOMAIN EDE 15"},
			{"ip.exact.example", dns.TypeA, "CH: NOERROR EDE 15"}, // a per-rule address makes it NODATA
			{"ip.exact.example", dns.TypeA, "ANY: NOERROR A 10.0.0.9 EDE 15"},
		}},
	} {
		d := startDnsmasq(t, opts{db: db, upstream: up, filter: filter, extra: c.extra})
		for _, e := range c.cases {
			class, want, _ := strings.Cut(e.want, ": ")
			m := question(e.name, e.qtype)
			m.Question[0].Qclass = dns.StringToClass[class]
			for _, network := range []string{"udp", "tcp"} {
				r, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(m, fmt.Sprintf("127.0.0.1:%d", d.port))
				if err != nil {
					t.Fatalf("%s %s %s %s: %v", network, e.name, class, dns.TypeToString[e.qtype], err)
				}
				if got := summary(r); got != want {
					t.Errorf("%v: %s %s %s %s = %q, want %q", c.extra, network, e.name, class, dns.TypeToString[e.qtype], got, want)
				}
				for _, rr := range r.Answer {
					if rr.Header().Class != dns.ClassINET {
						t.Errorf("%s %s %s: answer of class %d", network, e.name, class, rr.Header().Class)
					}
				}
			}
		}
	}
	if n := up.count("x.tracker.net"); n != 0 {
		t.Errorf("a blocked name reached the upstream %d times", n)
	}
}

// On one CPU Go would run a single P, and its monitor thread would then
// poll every 20 µs under load (bench/RESULTS.md): the library must give it
// a second P, and say so, and a blocked name must still be blocked.
func TestOneCPU(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // an operator's value would be kept
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	d := startDnsmasq(t, opts{db: db, upstream: up, prefix: []string{"taskset", "-c", "0"}})
	d.waitLog(t, 2*time.Second, "GOMAXPROCS raised from 1 to 2")
	if got := summary(d.mustQuery(t, "udp", "x.tracker.net", dns.TypeA)); !strings.HasPrefix(got, "NOERROR A 0.0.0.0") {
		t.Errorf("x.tracker.net A = %q on one CPU, want the sinkhole", got)
	}
}

// A name listed with the sqlite3 shell is blocked within 2 s, even though
// dnsmasq's own cache still holds the upstream answer.
func TestListChangeBeatsDnsmasqCache(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, upstream: up})
	if got := summary(d.mustQuery(t, "udp", "soon.example", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
		t.Fatalf("before: %s", got)
	}
	d.mustQuery(t, "udp", "soon.example", dns.TypeA) // now in dnsmasq's cache (TTL 300)
	if up.count("soon.example") != 1 {
		t.Fatalf("second query not answered from dnsmasq's cache")
	}
	sqlite3(t, db, "INSERT INTO domain VALUES ('soon.example', NULL, NULL)")
	start := time.Now()
	for {
		got := summary(d.mustQuery(t, "udp", "www.soon.example", dns.TypeA))
		if got2 := summary(d.mustQuery(t, "udp", "soon.example", dns.TypeA)); got2 == "NOERROR A 0.0.0.0 EDE 15" && got == got2 {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("still answered %q %v after the insert", got, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("blocked %v after the commit", time.Since(start))
	// TCP children see the change too.
	if got := summary(d.mustQuery(t, "tcp", "soon.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("tcp after change: %s", got)
	}
	sqlite3(t, db, "DELETE FROM domain WHERE Domain = 'soon.example'")
	d.waitAnswer(t, 2*time.Second, "soon.example", "NOERROR A 192.0.2.1", "the delete")
	// Written as another tool might: the triggers store the name as
	// lookups ask for it, in the same commit.
	sqlite3(t, db, "INSERT INTO domain VALUES ('Soon.Example.', NULL, NULL)")
	d.waitAnswer(t, 2*time.Second, "www.soon.example", "NOERROR A 0.0.0.0 EDE 15", "an insert in upper case with a trailing dot")
	// Written around the triggers, which a tool dropped: the row changes
	// without a new version, and the verdict the library cached for the
	// name under that version must not keep answering.
	if got := summary(d.mustQuery(t, "udp", "later.example", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
		t.Fatalf("later.example before: %s", got)
	}
	sqlite3(t, db, "DROP TRIGGER blockcache_domain_ins; INSERT INTO domain VALUES ('later.example', NULL, NULL)")
	d.waitAnswer(t, 2*time.Second, "later.example", "NOERROR A 0.0.0.0 EDE 15", "an insert with the triggers dropped")
	if got := summary(d.mustQuery(t, "tcp", "later.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Errorf("tcp after an insert with the triggers dropped: %s", got)
	}
	t.Log(d.waitLog(t, 2*time.Second, "has lost its version triggers", "blockcachectl init"))
}

// Listing a name with the sqlite3 shell keeps every verdict the library
// cached for other names: the triggers log the change, and dnsmasq reads
// it as such (one delta) instead of dropping its cache.
func TestListChangeKeepsCachedVerdicts(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, upstream: up})
	ask := func(network string) {
		t.Helper()
		for i := 0; i < 50; i++ {
			if got := summary(d.mustQuery(t, network, fmt.Sprintf("u%d.example", i), dns.TypeA)); got != "NOERROR A 192.0.2.1" {
				t.Fatalf("u%d.example over %s: %s", i, network, got)
			}
		}
		if got := summary(d.mustQuery(t, network, "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("x.tracker.net over %s: %s", network, got)
		}
	}
	ask("udp")
	sqlite3(t, db, "INSERT INTO domain VALUES ('soon.example', NULL, NULL)")
	d.waitAnswer(t, 2*time.Second, "www.soon.example", "NOERROR A 0.0.0.0 EDE 15", "the insert")
	ask("udp")
	ask("tcp")
	syscall.Kill(d.pid, syscall.SIGUSR1)
	// 51 names cached before the change, each moved to the new version
	// once; the TCP child's lookups are LRU hits in the parent.
	line := d.waitLog(t, 2*time.Second, "blockcache: list", "1 from the change log", "revalidated 51;")
	t.Log(line)
}

// A filter saved by `blockcachectl filter`, another process, is loaded by
// dnsmasq and brought up to date with a name listed after the save: the
// filter's hash must be the same in both processes, or listed names would
// pass. Over UDP and through a TCP child.
func TestSavedFilterIsLoaded(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	// 80,000 names: enough for the import below to grow the saved filter.
	sqlite3(t, db, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 80000)
		INSERT INTO domain SELECT 'n' || i || '.example', NULL, NULL FROM c`)
	sqlite3(t, db, "INSERT INTO domain VALUES ('bücher.example', NULL, NULL)") // no query asks for it: reported
	ctl := filepath.Join(buildDir(t), "blockcachectl")
	if out, err := exec.Command(ctl, "filter", "--db", db).CombinedOutput(); err != nil || !strings.Contains(string(out), "saved the filter") {
		t.Fatalf("blockcachectl filter: %v\n%s", err, out)
	}
	sqlite3(t, db, "INSERT INTO domain VALUES ('after.example', NULL, NULL)")
	d := startDnsmasq(t, opts{db: db, upstream: up})
	t.Log(d.waitLog(t, 5*time.Second, "blockcache: loaded the filter saved in the list at version", "and 1 names changed since"))
	// dnsmasq read no name, and hears of the odd one from the saved filter.
	t.Log(d.waitLog(t, 5*time.Second, `holds 1 listed name that no query asks for: domain "bücher.example" (Unicode`, "(found when the filter was saved)"))
	for _, network := range []string{"udp", "tcp"} {
		for name, want := range map[string]string{
			"www.after.example": "NOERROR A 0.0.0.0 EDE 15", "x.tracker.net": "NOERROR A 0.0.0.0 EDE 15",
			"n42.example": "NOERROR A 0.0.0.0 EDE 15", "exact.example": "NOERROR A 0.0.0.0 EDE 15",
			"unlisted.example": "NOERROR A 192.0.2.1",
		} {
			if got := summary(d.mustQuery(t, network, name, dns.TypeA)); got != want {
				t.Errorf("%s over %s: %s, want %s", name, network, got, want)
			}
		}
	}

	// An import too large for the change log grows the saved filter in its
	// own transaction; the running dnsmasq loads it for the new version.
	names := filepath.Join(t.TempDir(), "grow.txt")
	var b strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "grow%d.example\n", i)
	}
	if err := os.WriteFile(names, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ctl, "import", "--quiet", "--db", db, "--table", "domain", names).CombinedOutput()
	m := regexp.MustCompile(`added the import's names to the filter saved in the list, as the import is too large for the change log: version (\d+),`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("blockcachectl import: %v\n%s", err, out)
	}
	t.Log(d.waitLog(t, 5*time.Second, fmt.Sprintf("blockcache: loaded the filter saved in the list at version %s (", m[1])))
	for _, network := range []string{"udp", "tcp"} {
		for name, want := range map[string]string{
			"www.grow19999.example": "NOERROR A 0.0.0.0 EDE 15", "n79999.example": "NOERROR A 0.0.0.0 EDE 15",
			"grow20000.example": "NOERROR A 192.0.2.1",
		} {
			if got := summary(d.mustQuery(t, network, name, dns.TypeA)); got != want {
				t.Errorf("after the import, %s over %s: %s, want %s", name, network, got, want)
			}
		}
	}
}

// Fleets publish a list by renaming a complete file over the old one (rsync
// does exactly that): the new list must answer within 2 s, over UDP and
// from TCP children.
func TestPublishedFileReplacesTheList(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, h := list(t, filter)
	h.Close() // a published file has no writer
	d := startDnsmasq(t, opts{db: db, upstream: up})
	if got := summary(d.mustQuery(t, "udp", "www.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("before: %s", got)
	}
	next, h := testlist.New(t, `INSERT INTO domain VALUES ('published.example', NULL, NULL)`)
	h.Close()
	if err := os.Rename(next, db); err != nil {
		t.Fatal(err)
	}
	took := d.waitAnswer(t, 2*time.Second, "www.published.example", "NOERROR A 0.0.0.0 EDE 15", "the rename")
	t.Logf("published list answered %v after the rename", took)
	d.waitLog(t, 2*time.Second, "was replaced; now answering from the new file")
	for _, proto := range []string{"udp", "tcp"} {
		if got := summary(d.mustQuery(t, proto, "www.tracker.net", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
			t.Errorf("%s: a name of the old list only: %s", proto, got)
		}
		if got := summary(d.mustQuery(t, proto, "published.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Errorf("%s: a name of the new list: %s", proto, got)
		}
	}

	// The same with `blockcachectl publish`, as README says, from a master
	// whose writer is still open with its last change in the WAL.
	// Its saved filter comes along, and dnsmasq loads it for the new file.
	master, _ := testlist.New(t, `INSERT INTO domain VALUES ('second.example', NULL, NULL)`)
	ctl := filepath.Join(buildDir(t), "blockcachectl")
	if out, err := exec.Command(ctl, "filter", "--db", master).CombinedOutput(); err != nil {
		t.Fatalf("blockcachectl filter: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, "publish", "--db", master, db).CombinedOutput(); err != nil {
		t.Fatalf("blockcachectl publish: %v\n%s", err, out)
	}
	d.waitAnswer(t, 2*time.Second, "www.second.example", "NOERROR A 0.0.0.0 EDE 15", "blockcachectl publish returned")
	d.waitLog(t, 2*time.Second, "blockcache: loaded the filter saved in the list at version")
	if got := summary(d.mustQuery(t, "tcp", "published.example", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
		t.Errorf("tcp: a name of the list before: %s", got)
	}
}

func TestDaemonMode(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, upstream: up, daemon: true})
	if d.pid == d.cmd.Process.Pid {
		t.Fatal("did not daemonize")
	}
	for _, network := range []string{"udp", "tcp", "tcp", "udp"} {
		if got := summary(d.mustQuery(t, network, "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("daemon %s: %s", network, got)
		}
	}
	// several TCP connections at once: each is a forked child asking the parent
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			r, err := d.query(t, "tcp", fmt.Sprintf("c%d.tracker.net", i), dns.TypeA)
			if err == nil && summary(r) != "NOERROR A 0.0.0.0 EDE 15" {
				err = fmt.Errorf("c%d: %s", i, summary(r))
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A failed load or db_init stops startup with a message and a non-zero
// exit: on the starting process's stderr when daemonizing (through
// dnsmasq's error pipe) or in debug mode, in the log with -k (where
// dnsmasq points stderr at /dev/null, as for its own late errors).
func TestStartupFailures(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o644)
	empty := filepath.Join(dir, "empty.db") // a valid SQLite database, with no list in it
	os.WriteFile(empty, nil, 0o644)
	b := buildDir(t)
	lib := "--blockcache-library=" + filepath.Join(b, "libblockcache.so")
	good, _ := list(t, up)
	taken, err := net.Listen("tcp", "127.0.0.1:0") // the metrics port another program holds
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing db", []string{lib, "--db-file=" + filepath.Join(dir, "missing.db")}, "database file not found"},
		{"not sqlite", []string{lib, "--db-file=" + junk}, "not an SQLite blocklist database"},
		{"empty file", []string{lib, "--db-file=" + empty}, "has none of the tables domain_dns_allow, domain_dns_block, domain_exact, domain, domain_regex"},
		{"missing library", []string{"--db-file=" + junk, "--blockcache-library=" + filepath.Join(dir, "nope.so")}, "cannot load blockcache library"},
		{"bad option value for the library", []string{lib, "--db-file=" + junk, "--valkey-prefix=" + strings.Repeat("p", 40)}, "valkey-prefix"},
		{"metrics port taken", []string{lib, "--db-file=" + good, "--blockcache-metrics=" + taken.Addr().String()},
			"blockcache: cannot start: metrics endpoint: listen tcp " + taken.Addr().String() + ": bind: address already in use"},
	} {
		for _, mode := range []string{"daemon", "-d", "-k"} {
			port := freeUDPPort(t)
			logf := filepath.Join(dir, "log-"+strconv.Itoa(port))
			args := []string{"--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
				"--user=root", "--pid-file=" + filepath.Join(dir, "pid"), fmt.Sprintf("--server=127.0.0.1#%d", up.port)}
			if mode != "daemon" {
				args = append(args, mode)
			}
			if mode == "-k" {
				args = append(args, "--log-facility="+logf)
			}
			cmd := exec.Command(filepath.Join(b, "dnsmasq"), append(args, c.args...)...)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%s (%s): dnsmasq kept running", c.name, mode)
			}
			if mode == "-k" {
				out, _ = os.ReadFile(logf)
			}
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("%s (%s): err %v, output %q; want a failure mentioning %q", c.name, mode, err, out, c.want)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	b := buildDir(t)
	conf := filepath.Join(t.TempDir(), "dnsmasq.conf")
	os.WriteFile(conf, []byte("port=5353\ndb-file=/x.db\nvalkey-read=sometimes\n"), 0o644)
	out, err := exec.Command(filepath.Join(b, "dnsmasq"), "--test", "-C", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad value for valkey-read: want always|auto|never at line 3") {
		t.Errorf("conf error: %v %q", err, out)
	}
	// Each message says what the option wants, in --help's words.
	for bad, want := range map[string]string{
		"--valkey-port=0":               "bad value for valkey-port: want an integer from 1 to 65535",
		"--db-block-ipv4=::1":           "bad value for db-block-ipv4: want <ipaddr>|none",
		"--db-block-ipv6=1.2.3.4":       "bad value for db-block-ipv6: want <ipaddr>|none",
		"--valkey-cluster=nohostport":   "bad value for valkey-cluster: want <host>:<port>[,..]",
		"--blockcache-metrics=:9153":    "bad value for blockcache-metrics: want <addr>:<port>",
		"--valkey-tls=maybe":            "bad value for valkey-tls: want on|off|insecure",
		"--db-lru-size=-1":              "bad value for db-lru-size: want an integer from 0 to 1073741824",
		"--db-block-ttl=x":              "bad value for db-block-ttl: want an integer from 0 to 86400",
		"--db-yield-ms=10":              "bad value for db-yield-ms: want an integer from 0 to 9",
		"--valkey-host=":                "bad value for valkey-host: want <host>",
		"--blockcache-metrics=::1:9153": "bad value for blockcache-metrics: want <addr>:<port>", // [::1]:9153
		"--valkey-cluster=a:7000,b:7x":  "bad value for valkey-cluster: want <host>:<port>[,..]",
		"--valkey-cluster=a:70000":      "bad value for valkey-cluster: want <host>:<port>[,..]",
	} {
		out, err := exec.Command(filepath.Join(b, "dnsmasq"), "--test", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: %v %q, want %q", bad, err, out, want)
		}
	}
	os.WriteFile(conf, []byte("db-file=/x.db\ndb-block-ipv4=10.0.0.1\nvalkey-cluster=127.0.0.1:7000,[::1]:7001,v.example:7002\nblockcache-metrics=[::1]:0\n"), 0o644)
	if out, err := exec.Command(filepath.Join(b, "dnsmasq"), "--test", "-C", conf).CombinedOutput(); err != nil {
		t.Errorf("good conf rejected: %v %q", err, out)
	}
}

// Every library option is a dnsmasq option, documented in --help.
func TestHelpListsEveryOption(t *testing.T) {
	out, err := exec.Command(filepath.Join(buildDir(t), "dnsmasq"), "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range config.Keys() {
		if !strings.Contains(string(out), "--"+kv[0]+"=") {
			t.Errorf("dnsmasq --help lacks --%s", kv[0])
		}
	}
}

func TestWithoutDBFileIsStock(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	d := startDnsmasq(t, opts{upstream: up})
	if got := summary(d.mustQuery(t, "udp", "x.tracker.net", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
		t.Fatalf("%s", got)
	}
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", d.pid))
	if strings.Contains(string(maps), "libblockcache") {
		t.Fatal("library loaded without db-file")
	}
}

func TestSignalsAndMemory(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, upstream: up})
	for i := 0; i < 1000; i++ {
		d.mustQuery(t, "udp", fmt.Sprintf("w%d.tracker.net", i%500), dns.TypeA)
	}
	syscall.Kill(d.pid, syscall.SIGUSR1)
	// 500 names twice, plus the startup probe
	line := d.waitLog(t, 2*time.Second, "blockcache: list", "lru hits 500 misses 501 entries 501")
	t.Log(line)
	if rev := buildRevision(t); !strings.Contains(line, "; libblockcache "+rev+" (") {
		t.Errorf("the SIGUSR1 line does not name the build %s:\n%s", rev, line)
	}
	syscall.Kill(d.pid, syscall.SIGHUP)
	d.waitLogN(t, 2*time.Second, 2, "cleared cache") // the first is from startup
	syscall.Kill(d.pid, syscall.SIGUSR1)
	d.waitLog(t, 2*time.Second, "blockcache: list", "entries 0 evictions 0 flushed 501 ")

	// 10,000 queries in a row leave RSS bounded: unique names fill the
	// LRU, which is bounded by db-lru-size.
	before := d.rssKiB(t)
	for i := 0; i < 10000; i++ {
		if _, err := d.query(t, "udp", fmt.Sprintf("r%d.tracker.net", i), dns.TypeA); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	after := d.rssKiB(t)
	t.Logf("RSS %d KiB -> %d KiB after 10,000 queries", before, after)
	if after-before > 64*1024 {
		t.Fatalf("RSS grew by %d KiB over 10,000 queries", after-before)
	}
	syscall.Kill(d.pid, syscall.SIGTERM)
	d.waitLog(t, 3*time.Second, "exiting on receipt of SIGTERM")
}

func TestValkeyTierThroughDnsmasq(t *testing.T) {
	srv := valkeytest.Start(t)
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	vk := []string{"--valkey-host=127.0.0.1", "--valkey-port=" + strconv.Itoa(srv.Port), "--valkey-timeout-ms=50"}
	a := startDnsmasq(t, opts{db: db, upstream: up, extra: vk})
	b := startDnsmasq(t, opts{db: db, upstream: up, extra: vk})
	a.mustQuery(t, "udp", "shared.tracker.net", dns.TypeA)
	deadline := time.Now().Add(3 * time.Second)
	for srv.Do("DBSIZE") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("verdict not written to valkey")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := summary(b.mustQuery(t, "tcp", "shared.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("node b: %s", got)
	}
	if hits, line := b.valkeyHits(t, 1); hits < 1 {
		t.Fatalf("node b served nothing from valkey: %s", line)
	}
	// Valkey dies: dnsmasq keeps answering from SQLite.
	srv.Kill()
	for i := 0; i < 50; i++ {
		if got := summary(a.mustQuery(t, "udp", fmt.Sprintf("k%d.tracker.net", i), dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("valkey down: %s", got)
		}
	}
	a.waitLog(t, 3*time.Second, "valkey circuit open")
}

// Valkey over TLS with a private CA, through dnsmasq's options: a verdict
// one dnsmasq wrote is read by the other, and a dnsmasq without
// valkey-tls-ca does not trust the server.
func TestValkeyOverTLSThroughDnsmasq(t *testing.T) {
	dir := t.TempDir()
	valkeytest.PKI(t, dir)
	srv := valkeytest.StartTLS(t, dir, "optional")
	up := startUpstream(t, "192.0.2.1")
	db, _ := list(t, startUpstream(t, "198.51.100.7"))
	vk := []string{"--valkey-host=127.0.0.1", "--valkey-port=" + strconv.Itoa(srv.Port), "--valkey-timeout-ms=50", "--valkey-tls=on"}
	withCA := append(vk, "--valkey-tls-ca="+filepath.Join(dir, "ca.pem"))
	a := startDnsmasq(t, opts{db: db, upstream: up, extra: withCA})
	b := startDnsmasq(t, opts{db: db, upstream: up, extra: withCA})
	untrusting := startDnsmasq(t, opts{db: db, upstream: up, extra: vk})
	untrusting.waitLog(t, 2*time.Second, "unreachable at start", "certificate signed by unknown authority")
	a.mustQuery(t, "udp", "tls.tracker.net", dns.TypeA)
	syscall.Kill(a.pid, syscall.SIGUSR1)
	a.waitLog(t, 2*time.Second, "blockcache: list", "circuit closed")
	deadline := time.Now().Add(3 * time.Second)
	for n := 1; ; n++ {
		if got := summary(b.mustQuery(t, "udp", "tls.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("node b: %s", got)
		}
		hits, line := b.valkeyHits(t, n)
		if hits >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b never read a's verdict over TLS: %s", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// valkeyHits asks d for its statistics line, the n-th it logs, and returns
// the Valkey hits in it.
func (d *daemon) valkeyHits(t *testing.T, n int) (int, string) {
	t.Helper()
	syscall.Kill(d.pid, syscall.SIGUSR1)
	line := d.waitLogN(t, 2*time.Second, n, "blockcache: list", "valkey hits")
	var hits int
	fmt.Sscanf(line[strings.Index(line, "valkey hits"):], "valkey hits %d", &hits)
	return hits, line
}

func scrape(t *testing.T, port int) map[string]float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

func TestMetricsEndpoint(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	mport := valkeytest.FreePort(t)
	d := startDnsmasq(t, opts{db: db, upstream: up, extra: []string{fmt.Sprintf("--blockcache-metrics=127.0.0.1:%d", mport)}})
	before := scrape(t, mport)
	for i := 0; i < 5; i++ {
		d.mustQuery(t, "udp", fmt.Sprintf("m%d.tracker.net", i), dns.TypeA)
	}
	for i := 0; i < 40; i++ { // enough for the 1-in-16 latency sample to see LRU hits
		d.mustQuery(t, "udp", fmt.Sprintf("m%d.tracker.net", i%5), dns.TypeA)
	}
	d.mustQuery(t, "udp", "unlisted-metrics.example", dns.TypeA)
	after := scrape(t, mport)
	for key, want := range map[string]float64{
		`blockcache_lookups_total{tier="sqlite",verdict="block"}`: 5,
		`blockcache_lookups_total{tier="lru",verdict="block"}`:    40,
		`blockcache_lookups_total{tier="sqlite",verdict="pass"}`:  1,
		`blockcache_tier_hits_total{tier="lru"}`:                  40,
	} {
		if got := after[key] - before[key]; got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if after[`blockcache_list_version`] < 1 || after[`blockcache_list_stamp`] < 1 || after[`blockcache_list_versioned`] != 1 || after[`blockcache_lru_entries`] < 6 {
		t.Errorf("gauges: version %v, stamp %v, versioned %v, lru entries %v", after[`blockcache_list_version`], after[`blockcache_list_stamp`], after[`blockcache_list_versioned`], after[`blockcache_lru_entries`])
	}
	if _, ok := after[`blockcache_lookup_duration_seconds_count{tier="lru"}`]; !ok {
		t.Errorf("no latency histogram for the lru tier")
	}
	rev, found := buildRevision(t), false
	for k, v := range after {
		if strings.HasPrefix(k, "blockcache_build_info{") {
			found = true
			if !strings.Contains(k, `revision="`+rev+`"`) || !strings.Contains(k, `goversion="go`) || v != 1 {
				t.Errorf("%s %v, want the revision %s and a Go version", k, v, rev)
			}
		}
	}
	if !found {
		t.Error("no blockcache_build_info")
	}
	// A tool drops a version trigger: the list is read without versions,
	// which an alert on the gauge catches.
	sqlite3(t, db, "DROP TRIGGER blockcache_domain_del")
	for start := time.Now(); scrape(t, mport)[`blockcache_list_versioned`] != 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("blockcache_list_versioned still not 0 2 s after a version trigger was dropped")
		}
	}
}

// buildRevision is the revision blockcachectl of the same build names: the
// library must name the same one.
func buildRevision(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(buildDir(t), "blockcachectl"), "version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 || f[1] != "libblockcache" {
		t.Fatalf("blockcachectl version: %v %q", err, out)
	}
	return f[2]
}

// dnsmasq changes to / when it starts; a relative db-file keeps meaning
// what it meant where dnsmasq was started.
func TestRelativeDBPath(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{upstream: up, daemon: true, dir: filepath.Dir(db), extra: []string{"--db-file=" + filepath.Base(db)}})
	if got := summary(d.mustQuery(t, "udp", "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("%s", got)
	}
}

// make install into a temporary DESTDIR, then run what was installed:
// blockcachectl makes a list and the installed dnsmasq answers from it.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs")
	}
	dest := t.TempDir()
	top, _ := filepath.Abs("../..")
	cmd := exec.Command("make", "-s", "install", "DESTDIR="+dest, "PREFIX=/usr/local")
	cmd.Dir = top
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	root := filepath.Join(dest, "usr/local")
	for _, f := range []string{"lib/libblockcache.so", "include/blockcache.h", "sbin/dnsmasq-blockcache", "bin/blockcachectl",
		"share/doc/libblockcache/examples/dnsmasq-blockcache.service", "share/doc/libblockcache/examples/valkey-blockcache.conf",
		"share/doc/libblockcache/examples/blockcache-filter.service", "share/doc/libblockcache/examples/blockcache-filter.timer"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	// The example configuration operators start from must parse.
	conf := filepath.Join(root, "share/doc/libblockcache/examples/dnsmasq-blockcache.conf")
	if out, err := exec.Command(filepath.Join(root, "sbin/dnsmasq-blockcache"), "--test", "--conf-file="+conf).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "syntax check OK") {
		t.Errorf("the example configuration does not parse: %v\n%s", err, out)
	}
	db := filepath.Join(t.TempDir(), "list.db")
	ctl := filepath.Join(root, "bin/blockcachectl")
	for _, args := range [][]string{{"init", "--db", db}, {"add", "--db", db, "--table", "domain", "installed.example"}} {
		if out, err := exec.Command(ctl, args...).CombinedOutput(); err != nil {
			t.Fatalf("installed blockcachectl %s: %v\n%s", args[0], err, out)
		}
	}
	up := startUpstream(t, "192.0.2.1")
	port := freeUDPPort(t)
	dnsmasq := exec.Command(filepath.Join(root, "sbin/dnsmasq-blockcache"), "-k", "--port="+strconv.Itoa(port),
		"--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root",
		fmt.Sprintf("--server=127.0.0.1#%d", up.port), "--db-file="+db,
		"--blockcache-library="+filepath.Join(root, "lib/libblockcache.so"))
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dnsmasq.Process.Kill(); dnsmasq.Wait() }()
	d := &daemon{t: t, port: port}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := d.query(t, "udp", "www.installed.example", dns.TypeA)
		if err == nil {
			if got := summary(r); got != "NOERROR A 0.0.0.0 EDE 15" {
				t.Fatalf("installed dnsmasq: %s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("installed dnsmasq does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// As packaged: dnsmasq started as root drops to nobody, then loads the
// library, which must open a list owned by that user (WAL readers need to
// write the -shm file) and answer over UDP and TCP.
func TestPrivilegeDrop(t *testing.T) {
	dir := dirForNobody(t)
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	src, _ := list(t, filter)
	db := listForNobody(t, dir, src)
	d := startDnsmasq(t, opts{upstream: up, daemon: true, extra: []string{"--db-file=" + db, "--user=nobody", libForNobody(t, dir)}})
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if !strings.Contains(string(status), "Uid:\t65534") {
		t.Fatalf("dnsmasq did not drop to nobody:\n%s", status)
	}
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(d.mustQuery(t, network, "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("%s as nobody: %s", network, got)
		}
	}
}

// The list in a directory only root may write, as `blockcachectl init` as
// root leaves it: a WAL database cannot be read there by nobody (SQLite's
// readers create its -shm), and startup must say so in words an operator
// can act on, as for a list only root may read; a rollback-journal copy
// made with VACUUM INTO is read.
func TestListInARootOwnedDirectory(t *testing.T) {
	dir := dirForNobody(t)
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	src, h := list(t, filter)
	h.Close()
	wal := filepath.Join(dir, "wal.db")
	copied := filepath.Join(dir, "copy.db")
	for _, c := range [][]string{{src, ".backup " + wal}, {src, "VACUUM INTO '" + copied + "'"}} {
		if out, err := exec.Command("sqlite3", c...).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 %q: %v %s", c, err, out)
		}
	}
	// Bytes 18 and 19 of the header are 2 in WAL mode (asking sqlite3
	// would leave the -shm behind, which readers can use).
	if hdr, err := os.ReadFile(wal); err != nil || len(hdr) < 20 || hdr[18] != 2 || hdr[19] != 2 {
		t.Fatalf("the backup is not in WAL mode (%v)", err)
	}
	for _, f := range []string{wal + "-shm", wal + "-wal"} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("%s exists: the test needs a WAL database without it", f)
		}
	}
	// Daemon mode: dnsmasq drops privileges only when it daemonizes (or
	// with -k), and reports a startup failure through its error pipe.
	b := buildDir(t)
	start := func(db string) (string, error) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(b, "dnsmasq"), "--port="+strconv.Itoa(freeUDPPort(t)), "--listen-address=127.0.0.1",
			"--bind-interfaces", "--no-resolv", fmt.Sprintf("--server=127.0.0.1#%d", up.port), "--user=nobody", "--pid-file="+pidFile,
			libForNobody(t, dir), "--db-file="+db).CombinedOutput()
		if pid, _ := os.ReadFile(pidFile); err == nil && len(pid) > 0 {
			if p, _ := strconv.Atoi(strings.TrimSpace(string(pid))); p > 0 {
				syscall.Kill(p, syscall.SIGTERM)
			}
		}
		return string(out), err
	}
	if out, err := start(wal); err == nil || !strings.Contains(out, wal+"-shm") || !strings.Contains(out, "writable by uid 65534") {
		t.Errorf("WAL list in a root-owned directory, as nobody: err %v, output %q; want a failure naming the -shm file and the user", err, out)
	}
	// A list only root may read: the message names the user, since root
	// (who started dnsmasq) can read it.
	private := filepath.Join(dir, "private.db")
	if data, err := os.ReadFile(copied); err != nil || os.WriteFile(private, data, 0o600) != nil {
		t.Fatalf("copy the list: %v", err)
	}
	if out, err := start(private); err == nil || !strings.Contains(out, "permission denied") || !strings.Contains(out, "runs as uid 65534") {
		t.Errorf("list readable by root only, as nobody: err %v, output %q; want a failure naming the user", err, out)
	}
	d := startDnsmasq(t, opts{upstream: up, daemon: true, extra: []string{"--db-file=" + copied, "--user=nobody", libForNobody(t, dir)}})
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(d.mustQuery(t, network, "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Errorf("%s, VACUUM INTO copy as nobody: %s", network, got)
		}
	}
}

// dirForNobody returns a new root-owned directory (mode 0755) that nobody
// can reach: t.TempDir's parents are private to root. It skips the test
// when it cannot drop privileges.
func dirForNobody(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to drop privileges")
	}
	dir, err := os.MkdirTemp("", "blockcache-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// libForNobody copies the library into dir (from dirForNobody) and returns
// the option that loads it from there: dnsmasq loads it after dropping to
// nobody, who cannot read a build directory under /root (mode 0700 on a
// fresh Debian).
// listForNobody copies the list src into dir, owned by nobody with dir.
func listForNobody(t *testing.T, dir, src string) string {
	t.Helper()
	db := filepath.Join(dir, "list.db")
	if out, err := exec.Command("sqlite3", src, ".backup "+db).CombinedOutput(); err != nil {
		t.Fatalf("copy list: %v %s", err, out)
	}
	for _, p := range []string{dir, db} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// The Valkey password belongs in a file only root can read, included from
// the world-readable configuration (scripts/packaging/dnsmasq-blockcache.conf):
// dnsmasq reads both before it drops privileges, so the library, running
// as nobody, still authenticates, and writes its verdicts.
func TestValkeyPasswordInARootOnlyInclude(t *testing.T) {
	dir := dirForNobody(t)
	srv := valkeytest.Start(t, "--requirepass", "s3cret")
	up := startUpstream(t, "192.0.2.1")
	src, _ := list(t, startUpstream(t, "198.51.100.7"))
	db := listForNobody(t, dir, src)
	private := t.TempDir() // 0700, root's
	secret := filepath.Join(private, "valkey-password.conf")
	conf := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(secret, []byte("valkey-password=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("conf-file="+secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDnsmasq(t, opts{upstream: up, daemon: true, extra: []string{"--db-file=" + db, "--user=nobody", libForNobody(t, dir),
		"--conf-file=" + conf, "--valkey-host=127.0.0.1", "--valkey-port=" + strconv.Itoa(srv.Port)}})
	if got := summary(d.mustQuery(t, "udp", "x.tracker.net", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("x.tracker.net: %s", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for srv.CLI("--no-auth-warning", "-a", "s3cret", "DBSIZE") == "0" {
		if time.Now().After(deadline) {
			t.Fatalf("no verdict written to the password-protected Valkey; dnsmasq log:\n%s", d.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func libForNobody(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(buildDir(t), "libblockcache.so"))
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libblockcache.so")
	if err := os.WriteFile(lib, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return "--blockcache-library=" + lib
}

// A daily feed imported with --replace: the name the feed dropped is
// forwarded again within 2 s (over UDP and from TCP children), though the
// running dnsmasq had answered it blocked a moment before; the feed's new
// name is blocked. The same feed again changes no version.
func TestFeedReplaceUnlists(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	ctl := filepath.Join(buildDir(t), "blockcachectl")
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	feed := func(names ...string) string {
		t.Helper()
		p := filepath.Join(dir, names[0]+".txt")
		if err := os.WriteFile(p, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	importFeed := func(f string) string {
		t.Helper()
		out, err := exec.Command(ctl, "import", "--replace", "--quiet", "--db", db, "--table", "domain", f).CombinedOutput()
		if err != nil {
			t.Fatalf("blockcachectl import --replace: %v\n%s", err, out)
		}
		return string(out)
	}
	importFeed(feed("one.example", "two.example", "three.example"))
	d := startDnsmasq(t, opts{db: db, upstream: up})
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(d.mustQuery(t, network, "www.one.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
			t.Fatalf("before, over %s: %s", network, got)
		}
	}
	next := feed("two.example", "three.example", "four.example")
	if out := importFeed(next); !strings.Contains(out, "(1 new or changed, 1 removed as not in the files,") {
		t.Fatalf("the replacing import: %s", out)
	}
	took := d.waitAnswer(t, 2*time.Second, "www.one.example", "NOERROR A 192.0.2.1", "the replacing import")
	t.Logf("the dropped name was forwarded %v after the import", took)
	// expect checks the answers A queries get over UDP and over TCP.
	expect := func(after string, answers map[string]string) {
		t.Helper()
		for _, network := range []string{"udp", "tcp"} {
			for name, want := range answers {
				if got := summary(d.mustQuery(t, network, name, dns.TypeA)); got != want {
					t.Errorf("after %s, %s over %s: %s, want %s", after, name, network, got, want)
				}
			}
		}
	}
	expect("the import", map[string]string{
		"www.one.example": "NOERROR A 192.0.2.1", "one.example": "NOERROR A 192.0.2.1",
		"www.four.example": "NOERROR A 0.0.0.0 EDE 15", "two.example": "NOERROR A 0.0.0.0 EDE 15",
	})
	if out := importFeed(next); !strings.Contains(out, "the list version is unchanged") {
		t.Errorf("the same feed again: %s", out)
	}

	// The feed's next version exempts a name under one it blocks, and
	// blocks a new one: both halves in one commit (two list versions at
	// once), read through the LRU, which holds the exempted name's block.
	if got := summary(d.mustQuery(t, "udp", "cdn.two.example", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
		t.Fatalf("cdn.two.example before its exception: %s", got)
	}
	withExceptions := feed("two.example", "three.example", "four.example", "five.example", "@@||cdn.two.example^")
	out, err := exec.Command(ctl, "import", "--replace", "--and-exceptions", "--quiet", "--db", db, "--table", "domain", withExceptions).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported 1 exceptions into domain_dns_allow") {
		t.Fatalf("import --and-exceptions: %v\n%s", err, out)
	}
	d.waitAnswer(t, 2*time.Second, "www.cdn.two.example", "NOERROR A 192.0.2.1", "the feed's exception")
	expect("--and-exceptions", map[string]string{
		"cdn.two.example": "NOERROR A 192.0.2.1", "www.cdn.two.example": "NOERROR A 192.0.2.1",
		"two.example": "NOERROR A 0.0.0.0 EDE 15", "five.example": "NOERROR A 0.0.0.0 EDE 15",
	})
}

// Each query gets exactly one reply, with at most one OPT record, and EDNS
// only when the query had it. Ports to other dnsmasq releases hook the
// answer into different reply paths (2.91 sends a blocked answer through
// dnsmasq's own, which adds the OPT record); a hook left in the old place
// sends the answer twice or adds a second OPT record, which every other
// test here reads past.
func TestOneReplyPerQuery(t *testing.T) {
	up := startUpstream(t, "192.0.2.1")
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	up.chain("metrics.news.example", "x.deep.tracker.net")
	d := startDnsmasq(t, opts{db: db, upstream: up, filter: filter})
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.port}
	for _, c := range []struct {
		name    string
		qtype   uint16
		want    string
		blocked bool // answered by the patch: EDE 15 when the query has EDNS
	}{
		{"a.b.tracker.net", dns.TypeA, "NOERROR A 0.0.0.0", true},
		{"exact.example", dns.TypeMX, "NOERROR", true},                  // NODATA
		{"metrics.news.example", dns.TypeA, "NOERROR A 10.0.0.2", true}, // for its CNAME
		{"x.deep.tracker.net", dns.TypeAAAA, "NOERROR AAAA ::", true},   // per-rule IPv4 only
		{strings.Repeat("a", 63) + ".tracker.net", dns.TypeA, "NOERROR A 0.0.0.0", true},
		{"family.example", dns.TypeA, "NOERROR A 198.51.100.7", false}, // forward rule
		{"unlisted.example", dns.TypeA, "NOERROR A 192.0.2.1", false},  // forwarded
		{"unlisted.example", dns.TypeA, "NOERROR A 192.0.2.1", false},  // from dnsmasq's cache
	} {
		for _, edns := range []bool{false, true} {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(c.name), c.qtype)
			if edns {
				m.SetEdns0(1232, false)
			}
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.WriteToUDP(b, to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("%s edns=%v: no reply: %v", c.name, edns, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("%s edns=%v: %v", c.name, edns, err)
			}
			want := c.want
			if edns && c.blocked {
				want += " EDE 15"
			}
			if got := summary(r); got != want {
				t.Errorf("%s %s edns=%v = %q, want %q", c.name, dns.TypeToString[c.qtype], edns, got, want)
			}
			opt := 0
			for _, rr := range r.Extra {
				if rr.Header().Rrtype == dns.TypeOPT {
					opt++
				}
			}
			if wantOpt := map[bool]int{false: 0, true: 1}[edns]; opt != wantOpt {
				t.Errorf("%s edns=%v: %d OPT records, want %d", c.name, edns, opt, wantOpt)
			}
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _, err := conn.ReadFromUDP(buf); err == nil {
				t.Errorf("%s %s edns=%v: a second reply of %d bytes", c.name, dns.TypeToString[c.qtype], edns, n)
			}
		}
	}
}
