// Package name turns what arrives from dnsmasq or a list file into the one
// canonical form every tier keys on, so that "Ads.Example.COM." and
// "ads.example.com" can never be cached or matched as two different names.
package name

import (
	"errors"
	"fmt"
)

// MaxLen is the longest presentation-form name DNS can carry (RFC 1035:
// 255 octets on the wire, which is 253 characters without the trailing dot).
const MaxLen = 253

// MaxLabel is the longest label DNS can carry.
const MaxLabel = 63

// Errors returned by Normalize; callers test with errors.Is to count causes.
var (
	ErrEmpty    = errors.New("empty name")
	ErrTooLong  = errors.New("name longer than 253 bytes")
	ErrLabel    = errors.New("empty or over-long label")
	ErrBadChars = errors.New("name has a byte DNS names do not carry")
)

// Normalize returns the lower-case name without a trailing dot, or an error
// when the input cannot be a DNS name. It allocates only when the input has
// an upper-case letter, because most names on the wire are already lower
// case and this sits on the per-query path.
func Normalize(s string) (string, error) {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if len(s) == 0 {
		return "", ErrEmpty
	}
	if len(s) > MaxLen {
		return "", fmt.Errorf("%w: %d bytes", ErrTooLong, len(s))
	}
	upper := false
	labelStart := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if i-labelStart == 0 || i-labelStart > MaxLabel {
				return "", ErrLabel
			}
			labelStart = i + 1
		case c >= 'A' && c <= 'Z':
			upper = true
		case !validByte(c):
			return "", fmt.Errorf("%w: 0x%02x at %d", ErrBadChars, c, i)
		}
	}
	if len(s)-labelStart == 0 || len(s)-labelStart > MaxLabel {
		return "", ErrLabel
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

// validByte accepts letters, digits, '-', '_' (SRV and DKIM names, and
// much real-world junk that resolvers pass through) and '*' (literal
// wildcard owners). Anything else, including spaces and control bytes,
// means the input is not a name we should ever look up or store.
func validByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '*'
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
