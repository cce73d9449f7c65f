package e2e

import (
	"crypto"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// signer is an upstream that serves one DNSSEC-signed zone: the root, since
// dnsmasq validates from a root trust anchor and the test's is this zone's
// key. Over UDP it truncates the zone's DNSKEY answer and every name
// starting with "tc-", so dnsmasq has to fetch them over TCP: dnsmasq 2.91
// does that in a forked child (swap_to_tcp), 2.90 passes the truncation on
// and the client retries over TCP, which dnsmasq answers in a forked TCP
// child.
type signer struct {
	zone  string
	key   *dns.DNSKEY
	priv  crypto.Signer
	port  int
	mu    sync.Mutex
	asked map[string]int    // by askedKey
	cname map[string]string // owner -> target, both in the zone
}

func startSigner(t testing.TB, zone string) *signer {
	t.Helper()
	s := &signer{zone: dns.Fqdn(zone), asked: map[string]int{}, cname: map[string]string{}}
	s.key = &dns.DNSKEY{Hdr: dns.RR_Header{Name: s.zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := s.key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	s.priv = priv.(crypto.Signer)
	s.port = serveUDPAndTCP(t, dns.HandlerFunc(s.serve))
	return s
}

// trustAnchor is dnsmasq's --trust-anchor for the zone's key.
func (s *signer) trustAnchor() string {
	ds := s.key.ToDS(dns.SHA256)
	return fmt.Sprintf("--trust-anchor=%s,%d,%d,%d,%s", s.zone, ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
}

// askedKey counts a question per transport: "tcp a.example. DNSKEY".
func askedKey(network, name string, qtype uint16) string {
	return network + " " + dns.Fqdn(strings.ToLower(name)) + " " + dns.TypeToString[qtype]
}

func (s *signer) count(network, name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[askedKey(network, name, qtype)]
}

func (s *signer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	do := false
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
		do = o.Do()
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	network := w.RemoteAddr().Network()
	s.mu.Lock()
	s.asked[askedKey(network, name, q.Qtype)]++
	target := s.cname[name]
	s.mu.Unlock()
	if network == "udp" && (q.Qtype == dns.TypeDNSKEY || strings.HasPrefix(name, "tc-")) {
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	var sets [][]dns.RR
	switch {
	case q.Qtype == dns.TypeDNSKEY && name == s.zone:
		sets = append(sets, []dns.RR{s.key})
	case target != "" && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeCNAME):
		sets = append(sets, []dns.RR{&dns.CNAME{Hdr: s.hdr(name, dns.TypeCNAME), Target: target}},
			[]dns.RR{&dns.A{Hdr: s.hdr(target, dns.TypeA), A: net.IPv4(192, 0, 2, 80)}})
	case q.Qtype == dns.TypeA:
		sets = append(sets, []dns.RR{&dns.A{Hdr: s.hdr(name, dns.TypeA), A: net.IPv4(192, 0, 2, 80)}})
	}
	now := uint32(time.Now().Unix())
	for _, set := range sets {
		m.Answer = append(m.Answer, set...)
		if !do {
			continue
		}
		sig := &dns.RRSIG{Hdr: s.hdr(set[0].Header().Name, dns.TypeRRSIG), Algorithm: s.key.Algorithm,
			Inception: now - 3600, Expiration: now + 3600, KeyTag: s.key.KeyTag(), SignerName: s.zone}
		if err := sig.Sign(s.priv, set); err != nil {
			m.Rcode = dns.RcodeServerFailure
			break
		}
		m.Answer = append(m.Answer, sig)
	}
	w.WriteMsg(m)
}

func (s *signer) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
}

// release is the dnsmasq release under test, e.g. "2.91".
func release(t *testing.T) string {
	t.Helper()
	out := versionText(t)
	m := regexp.MustCompile(`^Dnsmasq version (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no version in %q", out)
	}
	return m[1]
}

// askValidating sends a query as a validating stub would, and retries over
// TCP when the UDP answer is truncated, as every client must.
func (d *daemon) askValidating(t *testing.T, name string, do bool) (r *dns.Msg, overTCP bool) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.AuthenticatedData = true
	m.SetEdns0(1232, do)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 3 * time.Second}
		var err error
		if r, _, err = c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", d.port)); err != nil {
			t.Fatalf("%s %s: %v (a forked child that called Go would hang)", network, name, err)
		}
		if !r.Truncated {
			return r, network == "tcp"
		}
	}
	t.Fatalf("%s: truncated over TCP", name)
	return nil, false
}

// children lists dnsmasq's live child processes.
func (d *daemon) children(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.pid, d.pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// fds counts dnsmasq's open sockets and pipes, what a fork leaves to the
// parent. (Files are left out: the library opens SQLite connections as
// lookups need them.)
func (d *daemon) fds(t *testing.T) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", d.pid)
	e, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range e {
		if l, err := os.Readlink(filepath.Join(dir, f.Name())); err == nil && (strings.HasPrefix(l, "socket:") || strings.HasPrefix(l, "pipe:")) {
			n++
		}
	}
	return n
}

// DNSSEC validation makes dnsmasq fork children that the other tests never
// reach: 2.91 fetches a truncated DNSKEY or answer over TCP in a child of
// the UDP path, 2.90 validates in the TCP child of the client's retry. The
// Go runtime is dead in both, so a child that called into the library would
// hang and the query would time out. Each child must also leave nothing
// behind in the parent: the library serves every forked child over a
// socket, which it must close when the child is gone.
func TestDNSSECThroughForkedChildren(t *testing.T) {
	zone := startSigner(t, ".")
	zone.cname["tc-cloaked.signed.test."] = "trk.signed.test."
	zone.cname["tc-fine.signed.test."] = "cdn.signed.test."
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	sqlite3(t, db, `INSERT INTO domain VALUES ('trk.signed.test', NULL, NULL), ('blocked.signed.test', NULL, NULL)`)
	d := startDnsmasq(t, opts{db: db, extra: []string{"--dnssec", zone.trustAnchor(),
		fmt.Sprintf("--server=127.0.0.1#%d", zone.port)}})
	rel := release(t)
	v, _ := strconv.ParseFloat(rel, 64)
	udpChild := v >= 2.91 // swap_to_tcp
	baseFDs := d.fds(t)

	for round := 1; round <= 3; round++ {
		// A validated answer for which dnsmasq needed the zone's DNSKEY,
		// which only TCP gives.
		r, overTCP := d.askValidating(t, fmt.Sprintf("a%d.signed.test", round), true)
		if got := summary(r); got != "NOERROR A 192.0.2.80 RRSIG" || !r.AuthenticatedData {
			t.Fatalf("round %d: validated name = %q, AD %v; want the signed answer, validated (log: %s)", round, got, r.AuthenticatedData, d.logText())
		}
		if n := zone.count("tcp", zone.zone, dns.TypeDNSKEY); n != round {
			t.Fatalf("round %d: DNSKEY fetched over TCP %d times, want %d: no child did it", round, n, round)
		}
		if udpChild == overTCP {
			t.Errorf("round %d: dnsmasq %s answered over TCP: %v", round, rel, overTCP)
		}
		// The answer itself only fits TCP; the client did not ask for
		// DNSSEC records. Its CNAME target is listed: the verdict comes
		// from the parent after the child's fetch (2.91) or from the TCP
		// child, through the parent (2.90).
		name := "tc-cloaked.signed.test"
		if r, _ := d.askValidating(t, name, false); summary(r) != "NOERROR A 0.0.0.0 EDE 15" {
			t.Errorf("round %d: %s = %q, want blocked by its CNAME", round, name, summary(r))
		}
		if r, _ := d.askValidating(t, "tc-fine.signed.test", false); summary(r) != "NOERROR A 192.0.2.80 CNAME" || !r.AuthenticatedData {
			t.Errorf("round %d: tc-fine.signed.test = %q, AD %v; want the validated chain", round, summary(r), r.AuthenticatedData)
		}
		for _, network := range []string{"udp", "tcp"} {
			if got := summary(d.mustQuery(t, network, "x.blocked.signed.test", dns.TypeA)); got != "NOERROR A 0.0.0.0 EDE 15" {
				t.Errorf("round %d: %s x.blocked.signed.test = %q", round, network, got)
			}
		}

		deadline := time.Now().Add(3 * time.Second)
		for len(d.children(t)) > 0 || d.fds(t) != baseFDs {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: children %v still running, %d sockets and pipes open against %d before", round, d.children(t), d.fds(t), baseFDs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// SIGHUP empties dnsmasq's cache, keys included: the next round
		// forks again.
		if err := syscall.Kill(d.pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.waitLogN(t, 2*time.Second, round+1, "cleared cache") // the first is from startup
	}
	if n := zone.count("udp", "x.blocked.signed.test", dns.TypeA) + zone.count("tcp", "x.blocked.signed.test", dns.TypeA); n != 0 {
		t.Errorf("a blocked name reached the upstream %d times", n)
	}
}
