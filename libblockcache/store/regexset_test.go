package store

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestRequiredLiteral(t *testing.T) {
	for p, want := range map[string]string{
		`^ad[sz]?[0-9]*\.`:    "ad",
		`(^|\.)doubleclick\.`: "doubleclick.",
		`[0-9]{4}telemetry`:   "telemetry",
		`(?i)TRACKER`:         "tracker",
		`^(ads|track)\.`:      ".",
		`.*`:                  "",
		`(foo)+bar`:           "foo", // "foobar" holds too; the shorter one is still correct
		`x(abc)?y`:            "x",
	} {
		if got := requiredLiteral(p); got != want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", p, got, want)
		}
	}
}

// A pattern with upper-case letters matches the lower-case names it names;
// one without keeps its case-sensitive (faster) form, and a negated class
// means on lower-case names what it meant before.
func TestRegexUpperCase(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		match, folded bool
	}{
		{`^ADS\.`, "ads.example", true, true},
		{`^Ads[0-9]*\.`, "ads12.example", true, true},
		{`^[A-Z]+\.bad\.`, "abc.bad.io", true, true},
		{`tracker\.EXAMPLE$`, "x.tracker.example", true, true},
		{`^ads\.`, "ads.example", true, false},
		{`^[a-z]+\.bad\.`, "abc.bad.io", true, false},
		{`(?i)^ADS\.`, "ads.example", true, false}, // already folded
		{`^\D+\.bad\.`, "abc.bad.io", true, false}, // \D holds both cases
		{`\Aads\.`, "ads.example", true, false},    // \A is an anchor, not a letter
		{`^[^a-z]+\.bad\.`, "abc.bad.io", false, true},
		{`^[^a-z]+\.bad\.`, "123.bad.io", true, true},
	} {
		re, err := compileRule(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := re.MatchString(c.name); got != c.match {
			t.Errorf("%s on %s: match %v, want %v", c.pattern, c.name, got, c.match)
		}
		if folded := re.String() != c.pattern; folded != c.folded {
			t.Errorf("%s compiled as %s: folded %v, want %v", c.pattern, re, folded, c.folded)
		}
	}
	var s regexSet
	s.addRule(`^ADS\.`, netip.Addr{}, netip.Addr{})
	if r, ok := s.match("ads.example"); !ok || r.pattern != `^ADS\.` {
		t.Errorf("regexSet: ads.example not matched by ^ADS\\. (%v)", ok)
	}
}

// The index must never change what matches: compare with running every
// pattern on every name.
func TestRegexSetMatchesLikeBruteForce(t *testing.T) {
	patterns := []string{`^ad[sz]?[0-9]*\.`, `(^|\.)doubleclick\.`, `[0-9]{4}telemetry`, `(?i)TRACKER`, `^(ads|track)\.`,
		`\.xyz$`, `^[a-z]{3}\.example$`, `metrics?`, `x(abc)?y`}
	for i := 0; i < 200; i++ {
		patterns = append(patterns, fmt.Sprintf(`^r%d-[0-9]+\.track%d\.example$`, i, i))
	}
	var s regexSet
	var res []*regexp.Regexp
	for _, p := range patterns {
		s.addRule(p, netip.Addr{}, netip.Addr{})
		res = append(res, regexp.MustCompile(p))
	}
	names := []string{"ads1.example.org", "a.doubleclick.net", "doubleclick.com", "x1234telemetry.io", "mytracker.net",
		"track.example", "foo.xyz", "abc.example", "metric.example", "xabcy.com", "xy.com", "r17-55.track17.example",
		"r17-55.track18.example", "plain.example.com", "a.b.c.d.e"}
	for _, n := range names {
		want := -1
		for i, re := range res {
			if re.MatchString(n) {
				want = i
				break
			}
		}
		r, ok := s.match(n)
		got := -1
		if ok {
			for i, p := range patterns {
				if p == r.pattern {
					got = i
				}
			}
		}
		if got != want {
			t.Errorf("%s: index matched pattern %d, brute force %d", n, got, want)
		}
	}
	if len(s.always) > 3 {
		t.Errorf("%d patterns unindexed: %v", len(s.always), s.always)
	}
	maxBucket := 0
	for _, b := range s.byTri {
		maxBucket = max(maxBucket, len(b))
	}
	if maxBucket > 20 {
		t.Errorf("largest trigram bucket holds %d patterns", maxBucket)
	}
}

// A row of Pi-hole's with its option suffix is skipped with the reason:
// compiled, it would match no name, and say nothing.
func TestPiholeOptionRowsAreSkipped(t *testing.T) {
	var s regexSet
	s.addRule(`^ads\.;querytype=AAAA`, netip.Addr{}, netip.Addr{})
	s.addRule(`^ads\.`, netip.Addr{}, netip.Addr{})
	if len(s.skipped) != 1 || !strings.Contains(s.skipErrs[0].Error(), "Pi-hole's ;querytype=AAAA option is not supported") {
		t.Fatalf("skipped %q: %v", s.skipped, s.skipErrs)
	}
	if r, ok := s.match("ads.example"); !ok || r.pattern != `^ads\.` {
		t.Errorf("ads.example: %v %v", r.pattern, ok)
	}
}
