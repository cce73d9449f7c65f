package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// mutate damages a packed DNS message the ways a broken or hostile peer
// does: flipped octets, a cut, counts that promise more records than there
// are, a compression pointer to itself or past the end, a label length
// that runs off the packet. from is the first octet it may touch, so that
// a reply keeps the ID and question dnsmasq matches it by and gets as far
// as the code that reads its records.
func mutate(r *rand.Rand, b []byte, from int) []byte {
	b = append([]byte(nil), b...)
	if from >= len(b) {
		from = len(b) - 1
	}
	at := func() int { return from + r.IntN(len(b)-from) }
	switch r.IntN(6) {
	case 0:
		for range 1 + r.IntN(4) {
			b[at()] ^= byte(1 << r.IntN(8))
		}
	case 1:
		b = b[:at()]
	case 2: // ANCOUNT, NSCOUNT or ARCOUNT
		i := 6 + 2*r.IntN(3)
		binary.BigEndian.PutUint16(b[i:], uint16(r.IntN(0x10000)))
	case 3: // a pointer to itself
		i := at()
		if i+1 < len(b) {
			b[i], b[i+1] = 0xc0|byte(i>>8), byte(i)
		}
	case 4: // a pointer past the end
		i := at()
		if i+1 < len(b) {
			b[i], b[i+1] = 0xff, 0xff
		}
	case 5: // a label longer than what follows
		b[at()] = byte(1 + r.IntN(63))
	}
	return b
}

// questionEnd is the offset just past a packed message's first question.
func questionEnd(b []byte) int {
	i := 12
	for i < len(b) && b[i] != 0 {
		i += int(b[i]) + 1
	}
	return i + 5
}

// startHostileUpstream answers names under hostile.example with a CNAME
// chain to a listed name, damaged by mutate three times in four (never for
// intact.hostile.example), and every other name with a plain A record. It
// counts the replies it damaged.
func startHostileUpstream(t *testing.T, seed uint64, damaged *atomic.Int64) int {
	t.Helper()
	var mu sync.Mutex // the handler runs in a goroutine per query
	r := rand.New(rand.NewPCG(seed, 2))
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if o := q.IsEdns0(); o != nil { // as real servers do; dnsmasq's EDE rides on it
			m.SetEdns0(o.UDPSize(), o.Do())
		}
		if len(q.Question) == 0 {
			w.WriteMsg(m)
			return
		}
		name := q.Question[0].Name
		owner := name
		hostile := strings.HasSuffix(strings.ToLower(name), "hostile.example.")
		if hostile {
			for _, target := range []string{"c1.cdn.example.", "c2.cdn.example.", "x.tracker.net."} {
				m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: target})
				owner = target
			}
		}
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)})
		b, err := m.Pack()
		if err != nil {
			t.Errorf("packing a reply: %v", err)
			return
		}
		if hostile && !strings.HasPrefix(strings.ToLower(name), "intact.") {
			mu.Lock()
			if r.IntN(4) != 0 {
				b = mutate(r, b, questionEnd(b))
				damaged.Add(1)
			}
			mu.Unlock()
		}
		w.Write(b)
	})
	return serveUDPAndTCP(t, h)
}

// TestHostilePacketsNeverStopIt sends the patched dnsmasq damaged queries
// over UDP and over TCP (where a forked child reads them and asks its
// parent for the verdict), and gives it damaged upstream replies whose
// CNAME chains it reads for blocked targets. dnsmasq must go on running
// in the same process, give every verdict as before over both transports,
// and still block a reply for its CNAME target. A TCP child that dies is
// seen only when dnsmasq is built with the sanitizers
// (scripts/test-sanitized.sh runs this suite so). The seed is logged;
// BLOCKCACHE_HOSTILE_SEED replays a run's queries and damage (which reply
// gets which damage depends on the order they arrive in).
func TestHostilePacketsNeverStopIt(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BLOCKCACHE_HOSTILE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("BLOCKCACHE_HOSTILE_SEED: %v", err)
		}
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var damaged atomic.Int64
	upPort := startHostileUpstream(t, seed, &damaged)
	filter := startUpstream(t, "198.51.100.7")
	db, _ := list(t, filter)
	d := startDnsmasq(t, opts{db: db, filter: filter, extra: []string{fmt.Sprintf("--server=127.0.0.1#%d", upPort)}})
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)

	alive := func(when string) {
		t.Helper()
		if !d.alive() {
			t.Fatalf("%s: dnsmasq (pid %d) is gone\nlog:\n%s", when, d.pid, d.logText())
		}
	}
	check := func(when string) {
		t.Helper()
		alive(when)
		for _, network := range []string{"udp", "tcp"} {
			for _, c := range []expect{
				{"a.b.tracker.net", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"},
				{"exact.example", dns.TypeAAAA, "NOERROR AAAA :: EDE 15"},
				{"ads1.example.org", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"},
				{"plain.example", dns.TypeA, "NOERROR A 192.0.2.1"},
				{"intact.hostile.example", dns.TypeA, "NOERROR A 0.0.0.0 EDE 15"}, // blocked by its CNAME target
			} {
				if got := summary(d.mustQuery(t, network, c.name, c.qtype)); got != c.want {
					t.Errorf("%s: %s %s %s = %q, want %q", when, network, c.name, dns.TypeToString[c.qtype], got, c.want)
				}
			}
		}
	}

	names := []string{"a.b.tracker.net", "exact.example", "ads1.example.org", "family.example",
		"allowed.tracker.net", "plain.example", strings.Repeat("x", 63) + ".tracker.net"}
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// drain reads replies until none has come for 300 ms, so that the next
	// burst does not overflow dnsmasq's socket buffer.
	drain := func() {
		for {
			udp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := udp.Read(make([]byte, 4096)); err != nil {
				return
			}
		}
	}
	for round := range 4 {
		// Damaged queries, UDP: anything from the header on.
		for range 500 {
			b, _ := question(names[r.IntN(len(names))], []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeMX}[r.IntN(4)]).Pack()
			udp.Write(mutate(r, b, r.IntN(2)*12))
		}
		drain()
		alive(fmt.Sprintf("round %d, after damaged queries over UDP", round+1))
		// Intact queries whose replies come back damaged. A damaged reply
		// may be dropped: nothing waits for one.
		for i := range 60 {
			b, _ := question(fmt.Sprintf("n%d-%d.hostile.example", round, i), dns.TypeA).Pack()
			udp.Write(b)
		}
		drain()
		alive(fmt.Sprintf("round %d, after damaged replies", round+1))
		// Damaged queries, TCP: each in a connection of its own, read by a
		// forked child. dnsmasq runs at most 20 children; the rest wait.
		var wg sync.WaitGroup
		for range 40 {
			b, _ := question(names[r.IntN(len(names))], dns.TypeA).Pack()
			b = mutate(r, b, r.IntN(2)*12)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Errorf("round %d: TCP connect: %v", round+1, err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(300 * time.Millisecond))
				c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
				c.Read(make([]byte, 4096)) // an answer, an error or nothing
			}()
		}
		wg.Wait()
		drain()
		check(fmt.Sprintf("after round %d", round+1))
	}
	if n := damaged.Load(); n < 100 {
		t.Errorf("only %d damaged replies reached dnsmasq, want at least 100", n)
	} else {
		t.Logf("%d damaged upstream replies", n)
	}
	if s := d.logText(); strings.Contains(s, "no verdict from parent") {
		t.Errorf("a TCP child could not ask for a verdict:\n%s", s)
	}
}
