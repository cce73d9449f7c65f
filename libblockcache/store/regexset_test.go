package store

import (
	"fmt"
	"net/netip"
	"regexp"
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
