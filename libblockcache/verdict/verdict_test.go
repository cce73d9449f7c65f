package verdict

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []Verdict{
		{},
		{Action: Block, Table: TableExact},
		{Action: Block, Table: TableDomain, IPv4: netip.MustParseAddr("10.0.0.1")},
		{Action: Block, Table: TableRegex, IPv4: netip.MustParseAddr("0.0.0.0"), IPv6: netip.MustParseAddr("::1")},
		{Action: Forward, Table: TableDNSAllow, Server: "9.9.9.9"},
		{Action: Forward, Table: TableDNSBlock, Server: "127.0.0.1#5353"},
		{Action: Forward, Table: TableDNSBlock, Server: "::1#53"},
	}
	for _, v := range cases {
		b := v.AppendBinary(nil)
		got, err := Decode(b)
		if err != nil || got != v {
			t.Errorf("round trip %+v -> %x -> %+v, %v", v, b, got, err)
		}
	}
	if n := len((Verdict{}).AppendBinary(nil)); n != 1 {
		t.Errorf("pass verdict encodes to %d bytes, want 1", n)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0x80},
		{byte(Block)},                          // block without table
		{byte(Pass) | byte(TableExact)<<2},     // pass with table
		{byte(Block) | byte(TableDNSAllow)<<2}, // block from a forward table
		{byte(Block) | byte(TableExact)<<2 | flag4, 1, 2},
		{byte(Block) | byte(TableExact)<<2, 'x'},
		append([]byte{byte(Forward) | byte(TableDNSAllow)<<2}, "not-an-ip"...),
		{byte(Forward) | byte(TableDNSAllow)<<2},
		{3},
	} {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%x) err = %v, want ErrCorrupt", b, err)
		}
	}
}

func TestValidServer(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4#53", "::1", "fe80::1#5353", "#"} {
		if err := ValidServer(s); err != nil {
			t.Errorf("ValidServer(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "x", "1.2.3.4#", "1.2.3.4#0", "1.2.3.4#70000", "1.2.3.4#5a", "1.2.3.4:53", "##", "#53", " #"} {
		if ValidServer(s) == nil {
			t.Errorf("ValidServer(%q) accepted", s)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0})
	f.Add(Verdict{Action: Forward, Table: TableDNSBlock, Server: "1.1.1.1#53"}.AppendBinary(nil))
	f.Add(Verdict{Action: Forward, Table: TableDNSAllow, Server: UsualServers}.AppendBinary(nil))
	f.Add(Verdict{Action: Block, Table: TableDomain, IPv4: netip.MustParseAddr("1.2.3.4"), IPv6: netip.MustParseAddr("::2")}.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if vs, errs := DecodeString(string(b)); vs != v || (errs == nil) != (err == nil) {
			t.Fatalf("Decode and DecodeString disagree on %x: %+v %v / %+v %v", b, v, err, vs, errs)
		}
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes: the encoding
		// has exactly one form per verdict, so corrupted values cannot
		// alias valid ones.
		if again := v.AppendBinary(nil); !bytes.Equal(again, b) {
			t.Fatalf("Decode(%x) = %+v re-encodes to %x", b, v, again)
		}
	})
}

func TestPiholeOption(t *testing.T) {
	for p, want := range map[string]string{
		`^ads\.;querytype=AAAA`: ";querytype=AAAA", `^x;querytype=!A,AAAA`: ";querytype=!A,AAAA", `tele;invert`: ";invert",
		`^y;reply=nxdomain`: ";reply=nxdomain", `^(a;b)$`: "", `^ads\.`: "", `;invert;x`: "",
	} {
		if got := PiholeOption(p); got != want {
			t.Errorf("PiholeOption(%q) = %q, want %q", p, got, want)
		}
	}
}
