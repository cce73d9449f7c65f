// Package childsock serves verdicts to dnsmasq's forked TCP children. The
// Go runtime does not survive fork, so a child cannot call into the
// library; instead the parent creates a socketpair per TCP connection,
// hands one end to Serve, and the child's plain C code asks over the other.
//
// Wire format (see include/blockcache.h, BLOCKCACHE_SOCK_*):
//
//	request:  2 bytes length N, big-endian (2..RequestMax), N bytes: a kind
//	          (KindLookup, KindCNAME, KindCachedCNAME) and its arguments
//	response: ResponseSize bytes: action, table, tier, flags (bit 0 has
//	          IPv4, bit 1 has IPv6), IPv4[4], IPv6[16], server[64] NUL-padded
package childsock

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// ResponseSize is the fixed size of one answer.
const ResponseSize = 88

// RequestMax is the longest request a child sends (BLOCKCACHE_SOCK_REQUEST_MAX):
// room for two 253-octet names with every octet in dnsmasq's escaped form.
const RequestMax = 1024

// Request kinds, the first byte of a request (BLOCKCACHE_SOCK_*).
const (
	KindLookup      = 'L' // name
	KindCNAME       = 'C' // question NUL target, a reply's CNAME
	KindCachedCNAME = 'K' // question NUL target, a CNAME in dnsmasq's cache
)

// Lookuper is what Serve needs of the library.
type Lookuper interface {
	Lookup(ctx context.Context, raw string) (blockcache.Answer, error)
	CNAME(ctx context.Context, question, target string) (blockcache.Answer, bool)
	CachedCNAME(ctx context.Context, question, target string) bool
}

// Encode writes an answer in the wire format; errors were counted by the
// engine and the answer is then Pass.
func Encode(a blockcache.Answer, out *[ResponseSize]byte) {
	*out = [ResponseSize]byte{}
	out[0] = byte(a.Verdict.Action)
	out[1] = byte(a.Verdict.Table)
	out[2] = byte(a.Tier)
	if a.IPv4.Is4() {
		out[3] |= 1
		b := a.IPv4.As4()
		copy(out[4:8], b[:])
	}
	if a.IPv6.Is6() {
		out[3] |= 2
		b := a.IPv6.As16()
		copy(out[8:24], b[:])
	}
	copy(out[24:ResponseSize-1], a.Verdict.Server)
}

// Serve answers requests on f until the peer closes it, then closes f.
// It runs in its own goroutine, one per TCP child.
func Serve(ctx context.Context, l Lookuper, f *os.File) {
	defer f.Close()
	var hdr [2]byte
	var req [RequestMax]byte
	var resp [ResponseSize]byte
	for {
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > RequestMax { // not our child: stop rather than guess
			return
		}
		if _, err := io.ReadFull(f, req[:n]); err != nil {
			return
		}
		Encode(answer(ctx, l, string(req[:n])), &resp)
		if _, err := f.Write(resp[:]); err != nil {
			return
		}
	}
}

// answer is the verdict for one request; an unknown kind gets Pass.
func answer(ctx context.Context, l Lookuper, req string) blockcache.Answer {
	if req == "" {
		return blockcache.Answer{}
	}
	kind, args := req[0], req[1:]
	if kind == KindLookup {
		a, _ := l.Lookup(ctx, args)
		return a
	}
	q, t, ok := strings.Cut(args, "\x00") // dnsmasq escapes NUL octets inside names
	if !ok {
		return blockcache.Answer{}
	}
	switch kind {
	case KindCNAME:
		a, _ := l.CNAME(ctx, q, t) // zero (Pass) when not blocked
		return a
	case KindCachedCNAME:
		if l.CachedCNAME(ctx, q, t) {
			return blockcache.Answer{Result: engine.Result{Verdict: verdict.Verdict{Action: verdict.Block}}}
		}
	}
	return blockcache.Answer{}
}
