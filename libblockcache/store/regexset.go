package store

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// regexRule is one compiled row of domain_regex.
type regexRule struct {
	pattern string
	re      *regexp.Regexp
	ipv4    netip.Addr
	ipv6    netip.Addr
}

// regexSet matches a name against thousands of patterns without running
// thousands of matchers. Go's RE2 has no DFA, so one giant alternation is
// still slow; instead every pattern that must contain a literal of three
// or more bytes is indexed by one trigram of that literal, and a
// lookup runs only the patterns whose trigram occurs in the name. Patterns
// without such a literal are few in real lists; they are run one by one.
type regexSet struct {
	rules    []regexRule
	byTri    map[uint32][]int32 // trigram -> rule indexes (ascending)
	always   []int32            // rules with no usable literal
	skipped  []string           // patterns that failed to compile, for logging
	skipErrs []error
}

func trigram(s string, i int) uint32 {
	return uint32(s[i])<<16 | uint32(s[i+1])<<8 | uint32(s[i+2])
}

// addRule compiles pattern and indexes it; a pattern that does not compile
// is recorded in skipped and never fatal.
func (s *regexSet) addRule(pattern string, ipv4, ipv6 netip.Addr) {
	re, err := compileRule(pattern)
	if err != nil {
		s.skipped = append(s.skipped, pattern)
		s.skipErrs = append(s.skipErrs, err)
		return
	}
	idx := int32(len(s.rules))
	s.rules = append(s.rules, regexRule{pattern: pattern, re: re, ipv4: ipv4, ipv6: ipv6})
	lit := requiredLiteral(pattern)
	if len(lit) < 3 {
		s.always = append(s.always, idx)
		return
	}
	if s.byTri == nil {
		s.byTri = make(map[uint32][]int32)
	}
	// Any trigram of the literal will do; the least used one so far keeps
	// buckets small when many patterns share a common part ("\.example").
	best := trigram(lit, 0)
	for i := 1; i+3 <= len(lit); i++ {
		if t := trigram(lit, i); len(s.byTri[t]) < len(s.byTri[best]) {
			best = t
		}
	}
	s.byTri[best] = append(s.byTri[best], idx)
}

// compileRule compiles a domain_regex pattern. Names reach it in lower
// case, as DNS compares them, so an upper-case letter in a pattern
// (`^ADS\.`, `[A-Z]+`) could never match: such a pattern is compiled
// case-insensitively, which is what its author meant and what other
// blockers do. On lower-case names that changes nothing else. Lower-case
// patterns, nearly all, keep the case-sensitive form, whose literal
// prefix Go's regexp finds with a plain string search.
func compileRule(pattern string) (*regexp.Regexp, error) {
	if o := verdict.PiholeOption(pattern); o != "" {
		//lint:ignore ST1005 a proper noun, as Pi-hole writes it
		return nil, fmt.Errorf("Pi-hole's %s option is not supported", o)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if parsed, err := syntax.Parse(pattern, syntax.Perl); err == nil && wantsUpper(parsed) {
		return regexp.Compile("(?i)" + pattern)
	}
	return re, nil
}

// wantsUpper reports whether re has a case-sensitive literal with an
// upper-case letter, or a class that holds an ASCII upper-case letter
// without its lower case.
func wantsUpper(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 && strings.ToLower(string(re.Rune)) != string(re.Rune) {
			return true
		}
	case syntax.OpCharClass:
		for r := 'A'; r <= 'Z'; r++ {
			if inClass(re.Rune, r) && !inClass(re.Rune, r+'a'-'A') {
				return true
			}
		}
	}
	for _, sub := range re.Sub {
		if wantsUpper(sub) {
			return true
		}
	}
	return false
}

// inClass reports whether r is in the ranges of a syntax.OpCharClass.
func inClass(ranges []rune, r rune) bool {
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] <= r && r <= ranges[i+1] {
			return true
		}
	}
	return false
}

// match returns the first rule (in table order) that matches n.
func (s *regexSet) match(n string) (*regexRule, bool) {
	if len(s.rules) == 0 {
		return nil, false
	}
	best := int32(-1)
	try := func(i int32) {
		if (best < 0 || i < best) && s.rules[i].re.MatchString(n) {
			best = i
		}
	}
	for _, i := range s.always {
		try(i)
	}
	if len(s.byTri) > 0 {
		for p := 0; p+3 <= len(n); p++ {
			for _, i := range s.byTri[trigram(n, p)] {
				try(i)
			}
		}
	}
	if best < 0 {
		return nil, false
	}
	return &s.rules[best], true
}

// requiredLiteral returns a lower-case literal string that every match of
// pattern must contain, or "" when none can be proven. It is conservative:
// any construct it does not understand contributes nothing.
func requiredLiteral(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	return longestRequired(re.Simplify())
}

func longestRequired(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		return strings.ToLower(string(re.Rune))
	case syntax.OpCapture:
		return longestRequired(re.Sub[0])
	case syntax.OpPlus:
		return longestRequired(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return longestRequired(re.Sub[0])
		}
	case syntax.OpConcat:
		best, run := "", ""
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral {
				run += strings.ToLower(string(sub.Rune))
				if len(run) > len(best) {
					best = run
				}
				continue
			}
			run = ""
			if l := longestRequired(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

func (s *regexSet) String() string {
	return fmt.Sprintf("%d patterns (%d indexed by literal, %d unindexed, %d skipped)",
		len(s.rules), len(s.rules)-len(s.always), len(s.always), len(s.skipped))
}
