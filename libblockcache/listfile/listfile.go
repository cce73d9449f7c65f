// Package listfile reads the blocklist formats operators actually have:
// plain domain lists, hosts files, AdBlock-style domain rules, stock
// dnsmasq's address=/local=/server= lines, response policy zones (RPZ)
// and regex lists, auto-detected line by line, normalized and validated,
// with every rejected line reported by file and line number. A list's
// blocks and its exceptions (Reader.Exceptions) are read separately, for
// two tables.
package listfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Kind says what the target table holds.
type Kind int

const (
	Domains  Kind = iota // domain names (every table but domain_regex)
	Patterns             // RE2 patterns (domain_regex)
)

// Problem is one rejected line.
type Problem struct {
	File string
	Line int
	Text string
	Err  error
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s:%d: %v: %q", p.File, p.Line, p.Err, clip(p.Text))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Errors a Problem can carry.
var (
	ErrName          = errors.New("not a valid domain name")
	ErrAdblockOption = errors.New("AdBlock rule options are not supported")
	ErrAdblockRule   = errors.New("AdBlock rule is not a plain domain rule")
	ErrPattern       = errors.New("pattern does not compile")
	ErrWildcard      = errors.New("a wildcard does not fit an exact-name table")
	ErrLineTooLong   = errors.New("line too long for a list entry")
	ErrDnsmasqLine   = errors.New("dnsmasq line is not a block")
	ErrRedirect      = errors.New("maps names to an address that is not a sinkhole (0.0.0.0, ::, 127.0.0.1, ::1, or the import's --ipv4/--ipv6): a redirection, not a block")
)

// boilerplate names of hosts files that must never be blocked.
var boilerplate = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true, "broadcasthost": true,
	"ip6-localhost": true, "ip6-loopback": true, "ip6-localnet": true, "ip6-mcastprefix": true,
	"ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
}

// Pattern checks an entry of domain_regex: RE2 syntax, and none of
// Pi-hole's option suffixes, which compile as part of a pattern that then
// matches no name.
func Pattern(p string) error {
	if o := verdict.PiholeOption(p); o != "" {
		return fmt.Errorf("%w: Pi-hole's %s option is not supported (a pattern matches names of every query type)", ErrPattern, o)
	}
	if _, err := regexp.Compile(p); err != nil {
		return fmt.Errorf("%w: %v", ErrPattern, err)
	}
	return nil
}

// MaxLine is the longest line a list may have. A longer one is no list
// entry (a minified page, a binary file): it is rejected like any other bad
// line, and reading goes on after it.
const MaxLine = 1 << 20

// Reader parses one list.
type Reader struct {
	Kind  Kind
	Exact bool // target is domain_exact: "*.x" makes no sense there
	File  string
	// Sinks are addresses a hosts or address= line may map names to
	// besides 0.0.0.0, :: and loopback: the import's own --ipv4/--ipv6, a
	// block page's address.
	Sinks []netip.Addr
	// Exceptions takes a list's exceptions instead of its blocks, for
	// domain_dns_allow: AdBlock @@ rules, RPZ rpz-passthru records and
	// dnsmasq's server=/name/# lines. A feed that has both sends its two
	// halves to two tables in two imports; each counts the other half's
	// entries in Others and skips them, after checking them as usual, so
	// both reject the same lines.
	Exceptions bool
	Others     int
	// OnOther, when set, receives each of the other half's names as it is
	// counted: an import of both halves in one transaction keeps them.
	OnOther func(name string)

	in       *bufio.Reader
	long     []byte // a line longer than the reader's buffer, being put together
	origin   string // a zone file's $ORIGIN, without its final dot
	owner    string // the last zone record's owner, for records that omit theirs
	inParens bool   // inside a zone file record's ( ... ), the SOA's numbers
	line     int
	pending  []string
	problems []Problem
	Entries  int // entries returned so far
	Rejected int // lines rejected so far; TakeProblems has their reasons
	Skipped  int // boilerplate and comments
}

// NewReader reads r, which is named file in problem reports.
func NewReader(r io.Reader, file string, kind Kind) *Reader {
	return &Reader{Kind: kind, File: file, in: bufio.NewReaderSize(r, 64*1024)}
}

// TakeProblems returns the lines rejected since it was last called. A
// caller reading a file of a billion bad lines takes them as it goes, so
// they are not all held at once.
func (r *Reader) TakeProblems() []Problem {
	p := r.problems
	r.problems = nil
	return p
}

// Next returns the next normalized entry, or io.EOF.
func (r *Reader) Next() (string, error) {
	for {
		if len(r.pending) > 0 {
			e := r.pending[0]
			r.pending = r.pending[1:]
			r.Entries++
			return e, nil
		}
		raw, err := r.readLine()
		if err == io.EOF {
			return "", io.EOF
		}
		if err != nil {
			return "", fmt.Errorf("%s:%d: %w", r.File, r.line+1, err)
		}
		r.line++
		if r.line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		}
		if len(raw) > MaxLine {
			r.fail(string(raw[:80]), fmt.Errorf("%w: longer than %d bytes", ErrLineTooLong, MaxLine))
			continue
		}
		r.parse(strings.TrimSpace(string(raw)))
	}
}

// readLine returns the next line without its newline. Of a line longer than
// MaxLine it keeps only the first MaxLine+1 bytes, enough to reject it.
func (r *Reader) readLine() ([]byte, error) {
	r.long = r.long[:0]
	for {
		chunk, err := r.in.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(r.long) <= MaxLine {
				r.long = append(r.long, chunk...)
			}
			continue
		}
		if err == io.EOF && len(chunk) == 0 && len(r.long) == 0 {
			return nil, io.EOF
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		chunk = bytes.TrimSuffix(chunk, []byte("\n"))
		if len(r.long) == 0 {
			return chunk, nil
		}
		if len(r.long) <= MaxLine {
			r.long = append(r.long, chunk...)
		}
		return r.long, nil
	}
}

func (r *Reader) fail(text string, err error) {
	r.Rejected++
	r.problems = append(r.problems, Problem{File: r.File, Line: r.line, Text: clip(text), Err: err})
}

func (r *Reader) parse(line string) {
	if line == "" || line[0] == '#' || line[0] == '!' || line[0] == ';' || strings.HasPrefix(line, "[Adblock") {
		r.Skipped++
		return
	}
	if r.Kind == Patterns {
		p := line
		if len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/' { // AdBlock regex rule
			p = p[1 : len(p)-1]
		}
		if err := Pattern(p); err != nil {
			r.fail(line, err)
			return
		}
		r.pending = append(r.pending, p)
		return
	}
	if r.inParens {
		r.inParens = !strings.Contains(line, ")")
		r.Skipped++
		return
	}
	if line[0] == '$' && r.directive(line) {
		return
	}
	if strings.HasPrefix(line, "||") || strings.HasPrefix(line, "@@") || strings.HasPrefix(line, "|") {
		r.adblock(line)
		return
	}
	if k, rest, ok := strings.Cut(line, "=/"); ok && (k == "address" || k == "local" || k == "server") {
		r.dnsmasq(k, rest, line)
		return
	}
	if cosmetic(line) {
		r.fail(line, fmt.Errorf("%w: an element-hiding or scriptlet rule changes pages on the site, it does not block the site", ErrAdblockRule))
		return
	}
	if i := strings.IndexByte(line, '#'); i >= 0 { // trailing comment
		line = strings.TrimSpace(line[:i])
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		r.Skipped++
		return
	}
	if a, err := netip.ParseAddr(fields[0]); err == nil { // hosts file line
		if !r.sinkhole(a) {
			for _, f := range fields[1:] {
				if !boilerplate[strings.ToLower(f)] {
					r.fail(line, fmt.Errorf("%w: %s", ErrRedirect, a))
					return
				}
			}
			r.Skipped++ // "255.255.255.255 broadcasthost"
			return
		}
		for _, f := range fields[1:] {
			r.entry(f, line, false)
		}
		return
	}
	if owner, typ, rdata, ok := zoneRecord(fields); ok {
		r.rpz(owner, typ, rdata, line)
		return
	}
	if len(fields) > 1 {
		r.fail(line, fmt.Errorf("%w: several words on a line that is not a hosts entry", ErrName))
		return
	}
	r.entry(fields[0], line, false)
}

func (r *Reader) adblock(line string) {
	exception := strings.HasPrefix(line, "@@")
	rule := strings.TrimPrefix(line, "@@")
	if !strings.HasPrefix(rule, "||") {
		r.fail(line, ErrAdblockRule)
		return
	}
	body := rule[2:]
	if i := strings.IndexByte(body, '$'); i >= 0 {
		// $important and $all block the whole name, as a DNS block does;
		// any other option narrows a rule to what DNS cannot see (a
		// request type, a client, a third party) or undoes another.
		for _, o := range strings.Split(body[i+1:], ",") {
			if o != "important" && o != "all" {
				r.fail(line, fmt.Errorf("%w: %s", ErrAdblockOption, body[i:]))
				return
			}
		}
		body = body[:i]
	}
	body = strings.TrimSuffix(body, "^")
	body = strings.TrimSuffix(body, "|")
	if strings.ContainsAny(body, "/*^|") {
		r.fail(line, ErrAdblockRule)
		return
	}
	r.entry(body, line, exception)
}

// dnsmasq reads a line of dnsmasq's own configuration, as blocklists made
// for stock dnsmasq have them: address=/a/b/0.0.0.0 (or ::, or # or
// nothing: NXDOMAIN), local=/a/ and server=/a/ (no upstream: answered
// locally) each block a and b with their subdomains; server=/a/b/# (the
// usual servers) exempts them, an exception. A server or an address that
// is not a sinkhole is a forward or a redirection, not a block.
func (r *Reader) dnsmasq(key, rest, line string) {
	parts := strings.Split(rest, "/")
	names, value := parts[:len(parts)-1], parts[len(parts)-1]
	exception := key == "server" && value == "#"
	switch {
	case len(names) == 0:
		r.fail(line, fmt.Errorf("%w: no /name/", ErrDnsmasqLine))
		return
	case r.Exact:
		r.fail(line, fmt.Errorf("%w: %s= covers subdomains; import it into domain", ErrDnsmasqLine, key))
		return
	case key == "address" && value != "" && value != "#":
		if a, err := netip.ParseAddr(value); err != nil || !r.sinkhole(a) {
			r.fail(line, fmt.Errorf("%w: %s", ErrRedirect, value))
			return
		}
	case key != "address" && value != "" && !exception:
		r.fail(line, fmt.Errorf("%w: %s=/name/%s forwards the name; import its names into domain_dns_block with --server", ErrDnsmasqLine, key, value))
		return
	}
	for _, n := range names {
		if n == "" || n == "#" {
			r.fail(line, fmt.Errorf("%w: %q matches every name", ErrDnsmasqLine, "/"+n+"/"))
			return
		}
	}
	for _, n := range names {
		r.entry(n, line, exception)
	}
}

// sinkhole reports an address that blocklists answer listed names with:
// 0.0.0.0, ::, 127.0.0.1 and ::1 (not the rest of 127/8: Debian's hosts
// file maps the machine's own name to 127.0.1.1), and the import's own.
func (r *Reader) sinkhole(a netip.Addr) bool {
	a = a.Unmap() // ::ffff:0.0.0.0 is 0.0.0.0
	return a.IsUnspecified() || a == netip.IPv6Loopback() || a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || slices.Contains(r.Sinks, a)
}

// cosmetic reports an AdBlock rule that acts on a site's pages
// ("example.com##.ad", "#@#", "#?#", "#$#", "#%#" and their exceptions).
// Read as a name with a trailing comment, it would block the site itself:
// EasyList has thousands, for sites its users visit. A comment begins with
// a '#' after a space, or at the start of the line.
func cosmetic(line string) bool {
	for i := 1; i < len(line); i++ {
		if line[i] != '#' || line[i-1] == ' ' || line[i-1] == '\t' {
			continue
		}
		j := i + 1
		for j < len(line) && strings.IndexByte("@?$%", line[j]) >= 0 {
			j++
		}
		if j < len(line) && line[j] == '#' {
			return true
		}
	}
	return false
}

// entry normalizes one name (wildcard prefix, IDN, case, trailing dot) and
// returns it if it is of the half of the list the reader takes: an
// exception or a block.
func (r *Reader) entry(d, line string, exception bool) {
	if n, wild := name.Unwild(d); wild {
		if r.Exact {
			r.fail(line, ErrWildcard)
			return
		}
		d = n
	}
	n, err := Normalize(d)
	if err != nil {
		r.fail(line, err)
		return
	}
	if boilerplate[n] {
		r.Skipped++
		return
	}
	if exception != r.Exceptions {
		r.Others++
		if r.OnOther != nil {
			r.OnOther(n)
		}
		return
	}
	r.pending = append(r.pending, n)
}

// Normalize turns one user-typed name (any case, trailing dot, Unicode)
// into the stored form, or explains why it cannot be a name.
func Normalize(d string) (string, error) {
	d, err := name.ASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrName, err)
	}
	n, err := name.Normalize(d)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrName, err)
	}
	if strings.Contains(n, "*") {
		return "", fmt.Errorf("%w: wildcard inside the name", ErrName)
	}
	return n, nil
}
