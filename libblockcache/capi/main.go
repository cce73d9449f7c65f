// Command capi is the C export layer of libblockcache, built with
// -buildmode=c-shared. It converts between C and Go and nothing else; all
// behaviour lives in the blockcache package. It is the only place that
// keeps global state, because C calls have no other place to find it.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#define BLOCKCACHE_NO_PROTOTYPES
#include <stdlib.h>
#include <string.h>
#include "blockcache.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/childsock"
	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func main() {}

var lib = struct {
	mu      sync.Mutex
	cfg     config.Config
	log     *ratelog.Logger
	lastErr *C.char
}{cfg: config.Default(), log: ratelog.New(os.Stderr, 5, time.Minute)}

// current is read on every lookup; db_init and db_cleanup swap it under
// lib.mu.
var current atomic.Pointer[blockcache.Cache]

func get() *blockcache.Cache { return current.Load() }

func setErr(err error) C.int {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return setErrLocked(err)
}

func setErrLocked(err error) C.int {
	if lib.lastErr != nil {
		C.free(unsafe.Pointer(lib.lastErr))
	}
	lib.lastErr = C.CString(err.Error())
	return -1
}

// cName views a C name as a Go string without copying it, reading at most
// 1 KiB so that an unterminated buffer cannot run away. The view is only
// valid during the call: the engine copies a name before it caches it
// (engine.Lookup's contract), so Go never keeps C memory.
func cName(p *C.char) string {
	if p == nil {
		return ""
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), 1024)
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return unsafe.String(&b[0], n)
}

//export blockcache_abi_version
func blockcache_abi_version() C.int { return C.BLOCKCACHE_ABI_VERSION }

//export blockcache_set_option
func blockcache_set_option(key, value *C.char) C.int {
	if key == nil || value == nil {
		return setErr(fmt.Errorf("blockcache_set_option: NULL key or value"))
	}
	lib.mu.Lock()
	err := lib.cfg.Set(C.GoString(key), C.GoString(value))
	lib.mu.Unlock()
	if err != nil {
		return setErr(err)
	}
	return 0
}

//export blockcache_last_error
func blockcache_last_error() *C.char {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.lastErr == nil {
		lib.lastErr = C.CString("")
	}
	return lib.lastErr
}

//export db_init
func db_init() C.int {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if get() != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := blockcache.Open(ctx, lib.cfg, lib.log)
	if err != nil {
		return setErrLocked(err)
	}
	current.Store(c)
	return 0
}

//export db_check_termination
func db_check_termination(name *C.char) C.int {
	c := get()
	if c == nil {
		return -1
	}
	c.Pacer.Enter()
	a, _ := c.Lookup(context.Background(), cName(name))
	if a.Verdict.Action == verdict.Block {
		return 1
	}
	return 0
}

// begin starts a call that fills *out: it clears *out and returns the
// library, or nil when out is NULL or the library is not initialized.
func begin(out *C.struct_blockcache_verdict) *blockcache.Cache {
	if out == nil {
		return nil
	}
	*out = C.struct_blockcache_verdict{}
	c := get()
	if c != nil {
		c.Pacer.Enter()
	}
	return c
}

//export blockcache_lookup
func blockcache_lookup(name *C.char, out *C.struct_blockcache_verdict) C.int {
	c := begin(out)
	if c == nil {
		return -1
	}
	a, err := c.Lookup(context.Background(), cName(name))
	fill(out, a)
	if err != nil && a.Name != "" { // invalid names are not errors here
		return -1
	}
	return 0
}

//export blockcache_cname
func blockcache_cname(question, target *C.char, out *C.struct_blockcache_verdict) C.int {
	c := begin(out)
	if c == nil {
		return -1
	}
	a, blocked := c.CNAME(context.Background(), cName(question), cName(target))
	if !blocked {
		return 0
	}
	fill(out, a)
	return 1
}

//export blockcache_cached_cname
func blockcache_cached_cname(question, target *C.char) C.int {
	c := get()
	if c == nil {
		return -1
	}
	c.Pacer.Enter()
	return cbool(c.CachedCNAME(context.Background(), cName(question), cName(target)))
}

func fill(out *C.struct_blockcache_verdict, a blockcache.Answer) {
	out.action = C.int(a.Verdict.Action)
	out.table = C.int(a.Verdict.Table)
	out.tier = C.int(a.Tier)
	out.list_version = C.uint64_t(a.NS.Version)
	if a.IPv4.Is4() {
		out.has_ipv4 = 1
		b := a.IPv4.As4()
		for i := range b {
			out.ipv4[i] = C.uchar(b[i])
		}
	}
	if a.IPv6.Is6() {
		out.has_ipv6 = 1
		b := a.IPv6.As16()
		for i := range b {
			out.ipv6[i] = C.uchar(b[i])
		}
	}
	for i := 0; i < len(a.Verdict.Server) && i < C.BLOCKCACHE_SERVER_MAX-1; i++ {
		out.server[i] = C.char(a.Verdict.Server[i])
	}
}

//export blockcache_stats
func blockcache_stats(out *C.struct_blockcache_stats) C.int {
	c := get()
	if c == nil || out == nil {
		return -1
	}
	s := c.Stats()
	*out = C.struct_blockcache_stats{
		lookups: C.uint64_t(s.Lookups), invalid_names: C.uint64_t(s.Invalid), errors: C.uint64_t(s.SourceErrors),
		lru_hits: C.uint64_t(s.LRUHits), lru_misses: C.uint64_t(s.LRUMisses),
		lru_entries: C.uint64_t(s.LRUEntries), lru_evictions: C.uint64_t(s.LRUEvictions),
		valkey_hits: C.uint64_t(s.ValkeyHits), valkey_misses: C.uint64_t(s.ValkeyMisses),
		valkey_errors: C.uint64_t(s.ValkeyErrors), valkey_timeouts: C.uint64_t(s.ValkeyTimeouts),
		valkey_dropped_writes: C.uint64_t(s.ValkeyDropped), valkey_corrupt: C.uint64_t(s.ValkeyCorrupt),
		valkey_enabled: cbool(s.ValkeyEnabled), valkey_circuit_open: cbool(s.ValkeyCircuitOpen),
		sqlite_lookups: C.uint64_t(s.Store.Lookups), sqlite_errors: C.uint64_t(s.Store.Errors),
		list_version: C.uint64_t(s.Store.Namespace.Version), list_reloads: C.uint64_t(s.Store.Reloads),
		regex_patterns: C.uint64_t(s.Store.RegexPatterns), regex_skipped: C.uint64_t(s.Store.RegexSkipped),
		filter_bytes: C.uint64_t(s.Store.FilterBytes), filter_skips: C.uint64_t(s.Store.FilterSkips),
		cname_blocks: C.uint64_t(s.CNAMEBlocks),
	}
	return 0
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

//export blockcache_stats_text
func blockcache_stats_text(buf *C.char, n C.size_t) C.int {
	c := get()
	if c == nil {
		return -1
	}
	line := c.Stats().String()
	if buf != nil && n > 0 {
		dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
		k := copy(dst[:len(dst)-1], line)
		dst[k] = 0
	}
	return C.int(len(line))
}

//export blockcache_flush
func blockcache_flush() C.int {
	c := get()
	if c == nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		return setErr(err)
	}
	return 0
}

// The child socket's sizes are written twice, in the header for C and in
// childsock for Go; these declarations stop compiling when the two differ.
var (
	_ [C.BLOCKCACHE_SOCK_RESPONSE - childsock.ResponseSize]struct{}
	_ [childsock.ResponseSize - C.BLOCKCACHE_SOCK_RESPONSE]struct{}
	_ [C.BLOCKCACHE_SOCK_REQUEST_MAX - childsock.RequestMax]struct{}
	_ [childsock.RequestMax - C.BLOCKCACHE_SOCK_REQUEST_MAX]struct{}
	_ [C.BLOCKCACHE_SOCK_LOOKUP - childsock.KindLookup]struct{}
	_ [childsock.KindLookup - C.BLOCKCACHE_SOCK_LOOKUP]struct{}
	_ [C.BLOCKCACHE_SOCK_CNAME - childsock.KindCNAME]struct{}
	_ [childsock.KindCNAME - C.BLOCKCACHE_SOCK_CNAME]struct{}
	_ [C.BLOCKCACHE_SOCK_CACHED_CNAME - childsock.KindCachedCNAME]struct{}
	_ [childsock.KindCachedCNAME - C.BLOCKCACHE_SOCK_CACHED_CNAME]struct{}
)

//export blockcache_serve_child
func blockcache_serve_child(fd C.int) C.int {
	c := get()
	if c == nil {
		syscall.Close(int(fd))
		return -1
	}
	// Non-blocking, so the goroutine parks in Go's poller, not in a thread.
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		syscall.Close(int(fd))
		return setErr(fmt.Errorf("child socket: %w", err))
	}
	f := os.NewFile(uintptr(fd), "blockcache-child")
	go childsock.Serve(context.Background(), c, f)
	return 0
}

//export blockcache_log_fd
func blockcache_log_fd() C.int {
	r, w, err := ratelog.NewPipe()
	if err != nil {
		return setErr(fmt.Errorf("log pipe: %w", err))
	}
	lib.log.SetOutput(w)
	return C.int(r)
}

//export db_cleanup
func db_cleanup() {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if c := current.Swap(nil); c != nil {
		c.Close()
	}
}
