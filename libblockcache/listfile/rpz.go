package listfile

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrZoneRecord is a line of a response policy zone (RPZ) that is not a
// block of a name.
var ErrZoneRecord = errors.New("RPZ record is not a block of a name")

// zoneTypes are the record types that mark a line as a zone file record.
var zoneTypes = map[string]bool{"CNAME": true, "A": true, "AAAA": true, "SOA": true, "NS": true, "TXT": true, "MX": true, "DNAME": true}

// zoneRecord splits a zone file record, "owner [ttl] [class] type rdata",
// with a trailing "; comment" cut; false when the fields are not one. A
// record without its owner (a line that began with a blank, which the
// caller trimmed) has the previous record's: owner is then "".
func zoneRecord(fields []string) (owner, typ string, rdata []string, ok bool) {
	for i, f := range fields {
		if strings.HasPrefix(f, ";") {
			fields = fields[:i]
			break
		}
	}
	if len(fields) < 2 {
		return "", "", nil, false // one word is a name
	}
	if f := strings.ToUpper(fields[0]); zoneTypes[f] || f == "IN" || isTTL(f) {
		fields = append([]string{""}, fields...)
	}
	for i := 1; i < len(fields) && i <= 3; i++ {
		f := strings.ToUpper(fields[i])
		switch {
		case zoneTypes[f]:
			return fields[0], f, fields[i+1:], true
		case f == "IN" || isTTL(f):
		default:
			return "", "", nil, false
		}
	}
	return "", "", nil, false
}

// isTTL reports a zone file TTL: seconds, or BIND's units (1h, 1d12h).
func isTTL(f string) bool {
	digits := false
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c >= '0' && c <= '9':
			digits = true
		case digits && strings.IndexByte("SMHDW", c) >= 0:
			digits = false
		default:
			return false
		}
	}
	return len(f) > 0 && f[0] >= '0' && f[0] <= '9'
}

// directive reads a zone file's $ directive, or reports that line is none:
// $ORIGIN names the zone that owners written in full end with, and $TTL
// changes no name; $INCLUDE and $GENERATE would bring names this reader
// does not see, so they are rejected rather than dropped unsaid.
func (r *Reader) directive(line string) bool {
	f := strings.Fields(line)
	switch strings.ToUpper(f[0]) {
	case "$ORIGIN":
		if len(f) < 2 {
			r.fail(line, fmt.Errorf("%w: $ORIGIN without a name", ErrZoneRecord))
			return true
		}
		r.origin = strings.ToLower(strings.TrimSuffix(f[1], "."))
	case "$TTL":
	case "$INCLUDE", "$GENERATE":
		r.fail(line, fmt.Errorf("%w: %s is not followed; import the names it brings as a file of their own", ErrZoneRecord, f[0]))
		return true
	default:
		return false
	}
	r.Skipped++
	return true
}

// rpz reads one record of a response policy zone (QNAME triggers only).
// "name CNAME ." (NXDOMAIN), "CNAME *." (NODATA), "CNAME rpz-drop." and an
// A or AAAA record of a sinkhole block the name; "*.name" the same with
// its subdomains, which a table that covers subdomains holds as "name".
// "CNAME rpz-passthru." is an exception (Reader.Exceptions). A CNAME to
// another name or an address that is not a sinkhole (local data: a
// redirection), and the triggers on answers' addresses, name servers and
// clients are rejected.
func (r *Reader) rpz(owner, typ string, rdata []string, line string) {
	switch typ {
	case "SOA", "NS":
		r.Skipped++ // the zone's own records
		if strings.Contains(line, "(") && !strings.Contains(line, ")") {
			r.inParens = true
		}
		return
	}
	if owner == "" {
		owner = r.owner
	}
	r.owner = owner
	if owner == "@" || owner == "" || len(rdata) == 0 {
		r.fail(line, fmt.Errorf("%w: no name, or no data", ErrZoneRecord))
		return
	}
	owner = strings.ToLower(owner)
	if strings.HasSuffix(owner, ".") {
		rel, ok := strings.CutSuffix(owner, "."+r.origin+".")
		if r.origin == "" || !ok {
			r.fail(line, fmt.Errorf("%w: a name written in full outside the zone's $ORIGIN", ErrZoneRecord))
			return
		}
		owner = rel
	}
	for _, t := range []string{"rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip"} {
		if owner == t || strings.HasSuffix(owner, "."+t) {
			r.fail(line, fmt.Errorf("%w: a %s trigger acts on something other than the name asked (an answer's address, a name server, the client)", ErrZoneRecord, t))
			return
		}
	}
	target := strings.ToLower(rdata[0])
	switch {
	case typ == "CNAME" && (target == "." || target == "*." || target == "rpz-drop."):
	case typ == "CNAME" && target == "rpz-passthru.":
		r.entry(owner, line, true)
		return
	case typ == "A" || typ == "AAAA":
		if a, err := netip.ParseAddr(target); err != nil || !r.sinkhole(a) {
			r.fail(line, fmt.Errorf("%w: %s", ErrRedirect, target))
			return
		}
	default:
		r.fail(line, fmt.Errorf("%w: %s %s answers with other data", ErrZoneRecord, typ, target))
		return
	}
	r.entry(owner, line, false)
}
