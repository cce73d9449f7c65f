package name

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	cases := []struct {
		in, want string
		err      error
	}{
		{"example.com", "example.com", nil},
		{"Example.COM.", "example.com", nil},
		{"a", "a", nil},
		{"_dmarc.x.org", "_dmarc.x.org", nil},
		{"", "", ErrEmpty},
		{".", "", ErrEmpty},
		{"a..b", "", ErrLabel},
		{".a", "", ErrLabel},
		{"a b.com", "", ErrBadChars},
		{"a\x00b", "", ErrBadChars},
		{long63 + ".com", long63 + ".com", nil},
		{long63 + "a.com", "", ErrLabel},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", nil},
		{strings.Repeat("a.", 127) + "aa", "", ErrTooLong},
		{strings.Repeat("x", 300), "", ErrTooLong},
	}
	for _, c := range cases {
		got, err := Normalize(c.in)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Normalize(%q) err = %v, want %v", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSuffixes(t *testing.T) {
	got := strings.Join(Suffixes("a.b.tracker.net"), " ")
	if got != "a.b.tracker.net b.tracker.net tracker.net net" {
		t.Fatalf("Suffixes = %q", got)
	}
	if s := Suffixes("com"); len(s) != 1 || s[0] != "com" {
		t.Fatalf("Suffixes(com) = %v", s)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "A.B.", "", "..", "a\xff.b", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		if len(n) == 0 || len(n) > MaxLen || strings.ToLower(n) != n || strings.HasSuffix(n, ".") {
			t.Fatalf("Normalize(%q) = %q breaks its contract", s, n)
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if sfx := Suffixes(n); sfx[0] != n || sfx[len(sfx)-1] != n[strings.LastIndexByte(n, '.')+1:] {
			t.Fatalf("Suffixes(%q) = %v", n, sfx)
		}
	})
}
