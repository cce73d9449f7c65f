// Package name turns what arrives from dnsmasq or a list file into the one
// canonical form every tier keys on, so that "Ads.Example.COM." and
// "ads.example.com" can never be cached or matched as two different names.
//
// Query names and list entries get different rules. A query may carry any
// octet in a label, and a blocker that refused to look up such a name
// would forward "we!rd.tracker.example" although tracker.example is
// listed: the odd label is the bypass. So Query accepts every octet and
// only rejects what cannot be a name on the wire. A list entry is typed by
// people and must be a host name, so Normalize keeps the strict rules and
// a malformed line is reported rather than stored.
package name

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// MaxLen is the longest name DNS can carry, in octets (RFC 1035: 255 on
// the wire, which is 253 without the length octets and the root).
const MaxLen = 253

// MaxLabel is the longest label DNS can carry.
const MaxLabel = 63

// Escape is dnsmasq's NAME_ESCAPE. dnsmasq hands names over as their wire
// octets joined by dots, except that an octet which is NUL, '.' or Escape
// itself becomes Escape followed by the octet plus one; so a '.' in the
// string always separates labels, and suffixes can be cut at dots.
const Escape = 0x01

// Errors returned by Query and Normalize; callers test with errors.Is to
// count causes.
var (
	ErrEmpty    = errors.New("empty name")
	ErrTooLong  = errors.New("name longer than 253 octets")
	ErrLabel    = errors.New("empty or over-long label")
	ErrBadChars = errors.New("name has a byte DNS names do not carry")
	ErrEscape   = errors.New("malformed escape")
)

// Query returns the key form of a query name in dnsmasq's form (see
// Escape): ASCII letters in lower case (RFC 4343: only those compare
// without case), no trailing dot, every other octet as it came. It fails
// only for what no DNS message can carry: an empty name or label, more
// than 63 octets in a label or 253 in the name, a NUL, or a broken escape.
// Such names cannot resolve anywhere, so the caller passes them on.
// It allocates only when the input has an upper-case letter, because most
// names on the wire are already lower case and this sits on the per-query
// path.
func Query(s string) (string, error) {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if len(s) == 0 {
		return "", ErrEmpty
	}
	upper := false
	start, escapes, labelEscapes := 0, 0, 0 // start: first byte of the current label
	for i := 0; i < len(s); i++ {
		k := class[s[i]]
		if k == plain {
			continue
		}
		switch k {
		case dot:
			if n := i - start - labelEscapes; n == 0 || n > MaxLabel {
				return "", ErrLabel
			}
			start, labelEscapes = i+1, 0
		case escape:
			if i+1 == len(s) || s[i+1] != 0+1 && s[i+1] != '.'+1 && s[i+1] != Escape+1 {
				return "", fmt.Errorf("%w at %d", ErrEscape, i)
			}
			i++
			labelEscapes++
			escapes++
		case nul:
			return "", fmt.Errorf("%w: NUL at %d", ErrBadChars, i)
		case upperCase:
			upper = true
		}
	}
	if n := len(s) - start - labelEscapes; n == 0 || n > MaxLabel {
		return "", ErrLabel
	}
	if octets := len(s) - escapes; octets > MaxLen {
		return "", fmt.Errorf("%w: %d", ErrTooLong, octets)
	}
	if !upper {
		return s, nil
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), nil
}

// Byte classes for Query's scan: most bytes are plain, and cost one table
// load and one compare.
const (
	plain = iota
	dot
	escape
	nul
	upperCase
)

var class = func() (t [256]uint8) {
	t['.'], t[Escape], t[0] = dot, escape, nul
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = upperCase
	}
	return t
}()

// Normalize returns the stored form of a list entry: Query's form, and
// only the bytes host names are written with.
func Normalize(s string) (string, error) {
	n, err := Query(s)
	if err != nil {
		return "", err
	}
	for i := 0; i < len(n); i++ {
		if n[i] != '.' && !validByte(n[i]) {
			return "", fmt.Errorf("%w: 0x%02x at %d", ErrBadChars, n[i], i)
		}
	}
	return n, nil
}

// validByte accepts letters, digits, '-', '_' (SRV and DKIM names, and
// much real-world junk that resolvers pass through) and '*' (literal
// wildcard owners). Anything else, including spaces and control bytes,
// means the input is not a name we should ever look up or store.
func validByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '*'
}

// ASCII returns s with its internationalized labels in the ASCII (xn--)
// form clients ask for ("Bücher.example." gives "xn--bcher-kva.example",
// lower case and without the trailing dot). A name of ASCII octets only
// is returned as it is, for Query or Normalize to judge.
func ASCII(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return idna.Lookup.ToASCII(strings.TrimSuffix(s, "."))
		}
	}
	return s, nil
}

// Unwild strips a wildcard prefix of a list entry, "*." or a leading "."
// (squid's form, and some wildcard lists'): in a table that covers
// subdomains the name alone says the same, and no query asks for either.
func Unwild(d string) (string, bool) {
	if strings.HasPrefix(d, "*.") {
		return d[2:], true
	}
	if strings.HasPrefix(d, ".") && !strings.HasPrefix(d, "..") {
		return d[1:], true
	}
	return d, false
}

// Suffixes returns the name and each parent domain, longest first:
// "a.b.c" gives "a.b.c", "b.c", "c". Rules match on whole labels, so only
// these strings can ever match a wildcard rule for the name.
func Suffixes(n string) []string {
	out := make([]string, 0, 8)
	out = append(out, n)
	for i := 0; i < len(n); i++ {
		if n[i] == '.' {
			out = append(out, n[i+1:])
		}
	}
	return out
}
