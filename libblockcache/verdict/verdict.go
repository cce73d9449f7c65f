// Package verdict holds what the library decides for a name and the compact
// byte form in which verdicts travel through the shared Valkey cache.
package verdict

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Action is what dnsmasq does with the query. The numeric values are part
// of the C ABI (include/blockcache.h) and of the Valkey encoding: never
// renumber them.
type Action uint8

const (
	Pass    Action = 0 // not listed: dnsmasq resolves as usual
	Block   Action = 1 // answer with the sinkhole addresses
	Forward Action = 2 // send to Verdict.Server (dns_allow / dns_block)
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Block:
		return "block"
	case Forward:
		return "forward"
	}
	return fmt.Sprintf("action(%d)", a)
}

// Table says which rule table produced the verdict; values are ABI too and
// their order is the precedence order.
type Table uint8

const (
	TableNone     Table = 0
	TableDNSAllow Table = 1
	TableDNSBlock Table = 2
	TableExact    Table = 3
	TableDomain   Table = 4
	TableRegex    Table = 5
)

// TableNames are the SQLite table names, indexed by Table.
var TableNames = [...]string{"", "domain_dns_allow", "domain_dns_block", "domain_exact", "domain", "domain_regex"}

// Forwards reports a table whose rules send names to a server
// (domain_dns_allow, domain_dns_block) rather than block them.
func (t Table) Forwards() bool { return t == TableDNSAllow || t == TableDNSBlock }

func (t Table) String() string {
	if int(t) < len(TableNames) {
		if t == TableNone {
			return "none"
		}
		return TableNames[t]
	}
	return fmt.Sprintf("table(%d)", t)
}

// Tier says which cache tier answered; ABI values.
type Tier uint8

const (
	TierNone   Tier = 0
	TierLRU    Tier = 1
	TierValkey Tier = 2
	TierSQLite Tier = 3
)

func (t Tier) String() string {
	switch t {
	case TierLRU:
		return "lru"
	case TierValkey:
		return "valkey"
	case TierSQLite:
		return "sqlite"
	}
	return "none"
}

// Verdict is the decision for one name under one list version. IPv4 and
// IPv6 are the rule's own sinkhole addresses; invalid (zero) means "use the
// global default", which is resolved at answer time so that nodes with
// different defaults can share cached verdicts.
type Verdict struct {
	Action Action
	Table  Table
	IPv4   netip.Addr
	IPv6   netip.Addr
	Server string // "ip", "ip#port" or UsualServers for Forward
	Rule   string // the matching domain or pattern; not carried in the cache encoding
}

// UsualServers is the Server of a rule that sends a name to dnsmasq's
// usual upstreams: an allow rule that only exempts the name from blocking,
// as dnsmasq's own server=/name/# does. Operators rarely want to name an
// upstream just to unblock one site, and a fleet's nodes may not share one.
const UsualServers = "#"

// MaxServerLen bounds Server so the C side can use a fixed buffer.
const MaxServerLen = 63

// ErrCorrupt marks bytes that are not a verdict; a cache tier treats them
// as a miss and never as an answer.
var ErrCorrupt = errors.New("corrupt verdict encoding")

// Encoding, chosen to keep a Valkey entry (key + value + server overhead)
// under 100 bytes:
//
//	byte 0: bits 0-1 action, bits 2-4 table, bit 5 has IPv4, bit 6 has IPv6
//	then 4 bytes IPv4 if present, 16 bytes IPv6 if present,
//	then the server string (Forward only), to the end.
//
// An unlisted name, the common case, is one byte.
const (
	flag4 = 1 << 5
	flag6 = 1 << 6
)

// AppendBinary appends the compact encoding of v to b.
func (v Verdict) AppendBinary(b []byte) []byte {
	h := byte(v.Action)&3 | byte(v.Table&7)<<2
	if v.IPv4.Is4() {
		h |= flag4
	}
	if v.IPv6.Is6() {
		h |= flag6
	}
	b = append(b, h)
	if v.IPv4.Is4() {
		a := v.IPv4.As4()
		b = append(b, a[:]...)
	}
	if v.IPv6.Is6() {
		a := v.IPv6.As16()
		b = append(b, a[:]...)
	}
	if v.Action == Forward {
		b = append(b, v.Server...)
	}
	return b
}

// Decode parses the compact encoding, rejecting anything that could not
// have been produced by AppendBinary.
func Decode(b []byte) (Verdict, error) { return decode(b) }

// DecodeString is Decode for an encoding kept as a string (the LRU keeps
// verdicts that way), without converting it.
func DecodeString(s string) (Verdict, error) { return decode(s) }

func decode[T string | []byte](b T) (Verdict, error) {
	var v Verdict
	if len(b) == 0 {
		return v, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	h := b[0]
	b = b[1:]
	if h&0x80 != 0 {
		return v, fmt.Errorf("%w: reserved bit set", ErrCorrupt)
	}
	v.Action = Action(h & 3)
	v.Table = Table(h >> 2 & 7)
	if v.Action > Forward || v.Table > TableRegex {
		return v, fmt.Errorf("%w: header 0x%02x", ErrCorrupt, h)
	}
	if (v.Action == Pass) != (v.Table == TableNone) {
		return v, fmt.Errorf("%w: action %v with table %v", ErrCorrupt, v.Action, v.Table)
	}
	if v.Action == Forward && v.Table != TableDNSAllow && v.Table != TableDNSBlock ||
		v.Action == Block && v.Table < TableExact {
		return v, fmt.Errorf("%w: action %v with table %v", ErrCorrupt, v.Action, v.Table)
	}
	if h&flag4 != 0 {
		if len(b) < 4 {
			return v, fmt.Errorf("%w: short IPv4", ErrCorrupt)
		}
		v.IPv4 = netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
		b = b[4:]
	}
	if h&flag6 != 0 {
		if len(b) < 16 {
			return v, fmt.Errorf("%w: short IPv6", ErrCorrupt)
		}
		var a [16]byte
		for i := range a {
			a[i] = b[i]
		}
		v.IPv6 = netip.AddrFrom16(a)
		b = b[16:]
	}
	if v.Action == Forward {
		if len(b) == 0 || len(b) > MaxServerLen {
			return v, fmt.Errorf("%w: server of %d bytes", ErrCorrupt, len(b))
		}
		v.Server = string(b)
		if err := ValidServer(v.Server); err != nil {
			return Verdict{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return v, nil
	}
	if len(b) != 0 {
		return v, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
	}
	return v, nil
}

// ParseIPv4 and ParseIPv6 are the one definition of a sinkhole address,
// for the global defaults, per-rule columns and the CLI alike: an IPv6
// option must not quietly hold an IPv4-mapped address.
func ParseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// ParseIPv6 is ParseIPv4 for IPv6.
func ParseIPv6(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address", s)
	}
	return a, nil
}

// piholeOption is the suffix Pi-hole's regex lists add to a pattern:
// ";querytype=AAAA", ";invert", ";reply=nxdomain".
var piholeOption = regexp.MustCompile(`;(querytype=[!A-Za-z0-9,]+|invert|reply=[A-Za-z0-9.:]+)$`)

// PiholeOption returns the Pi-hole option a domain_regex pattern ends
// with, or "". Such a suffix compiles as part of the pattern, which then
// matches no name: writers refuse it, and readers skip the row and log why.
func PiholeOption(pattern string) string {
	return piholeOption.FindString(pattern)
}

// ValidServer checks the "ip" or "ip#port" form dnsmasq uses for servers,
// or UsualServers, so that a bad row in a forward table is refused instead
// of handed to C.
func ValidServer(s string) error {
	if s == UsualServers {
		return nil
	}
	if s == "" || len(s) > MaxServerLen {
		return fmt.Errorf("server %q: empty or longer than %d bytes", s, MaxServerLen)
	}
	host, port := s, ""
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '#' {
			host, port = s[:i], s[i+1:]
			break
		}
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("server %q: %w", s, err)
	}
	if port != "" || len(host) != len(s) {
		n := 0
		for _, c := range []byte(port) {
			if c < '0' || c > '9' {
				return fmt.Errorf("server %q: bad port", s)
			}
			n = n*10 + int(c-'0')
			if n > 65535 {
				return fmt.Errorf("server %q: port out of range", s)
			}
		}
		if n == 0 {
			return fmt.Errorf("server %q: bad port", s)
		}
	}
	return nil
}
