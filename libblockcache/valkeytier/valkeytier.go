// Package valkeytier is the fleet-wide cache tier. It must never slow or
// break lookups: reads are bounded by a short deadline, writes go through a
// bounded queue to a background pipelined writer, and after a few
// consecutive failures a circuit opens so that lookups skip Valkey at the
// cost of one atomic load until a background probe finds it healthy again.
package valkeytier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Circuit states, exposed in statistics.
const (
	Closed = 0 // Valkey is used
	Open   = 1 // Valkey is skipped; a background probe checks it
)

// Tier is the Valkey tier. Safe for concurrent use.
type Tier struct {
	cfg  config.Valkey
	logf func(string, ...any)
	tls  *tls.Config // nil without valkey-tls

	// Reads and writes use separate clients: valkey-go serves a client used
	// by one goroutine at a time on the caller's goroutine, but once a second
	// one (the background writer) shares it, every read is handed to its
	// pipelining goroutines, which costs thread wake-ups per lookup.
	client  atomic.Pointer[valkey.Client] // reads; nil until the first connection succeeds
	wclient atomic.Pointer[valkey.Client] // writes
	circuit atomic.Int32
	fails   atomic.Int32 // consecutive read/write failures

	queue   chan write
	pending atomic.Int64 // queued or being written; Drain waits for 0
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	// auto mode: exponentially weighted latencies in nanoseconds (float64 bits)
	ewmaValkey, ewmaSource atomic.Uint64
	autoSkips, autoCalls   atomic.Uint64

	hits, misses, errs, timeouts, corrupt atomic.Uint64
	stale, revalidated                    atomic.Uint64
	dropped, written, writeErrs           atomic.Uint64
	opened, probes                        atomic.Uint64

	stillValid func(old, cur store.Namespace, name string) bool

	tagMu    sync.Mutex
	tagCache struct {
		listID, tag string
	}
}

// Revalidate lets a value of an older list version answer when
// stillValid(its version, the wanted version, name) says the verdict did
// not change in between (store.Store.StillValid). Set it before lookups
// start.
func (t *Tier) Revalidate(stillValid func(old, cur store.Namespace, name string) bool) {
	t.stillValid = stillValid
}

type write struct {
	key string
	val []byte
}

// New starts the tier. It does not fail when Valkey is unreachable: the
// circuit starts open and the background probe connects when it can.
func New(cfg config.Valkey, logf func(string, ...any)) (*Tier, error) {
	if !cfg.Enabled() {
		return nil, errors.New("no valkey-host or valkey-cluster configured")
	}
	t := &Tier{cfg: cfg, logf: logf, queue: make(chan write, cfg.QueueSize), stop: make(chan struct{})}
	if cfg.TLS {
		var err error
		if t.tls, err = tlsConfig(cfg); err != nil {
			return nil, err
		}
	}
	t.circuit.Store(Open)
	if err := t.connect(); err != nil {
		var refusal *valkey.ValkeyError
		if errors.As(err, &refusal) { // NOAUTH, WRONGPASS, NOPERM: it answers, but not to us
			t.logf("blockcache: valkey %v refused the library at start (%v): check valkey-user and valkey-password; lookups go to SQLite until it accepts", cfg.Addrs(), err)
		} else {
			t.logf("blockcache: valkey %v unreachable at start (%v); lookups go to SQLite until it answers", cfg.Addrs(), err)
		}
	} else {
		t.circuit.Store(Closed)
	}
	t.wg.Add(2)
	go t.writer()
	go t.prober()
	return t, nil
}

func (t *Tier) options() valkey.ClientOption {
	o := valkey.ClientOption{
		InitAddress:       t.cfg.Addrs(),
		Username:          t.cfg.User,
		Password:          t.cfg.Password,
		SelectDB:          t.cfg.DB,
		DisableCache:      true,
		DisableRetry:      true,
		ForceSingleClient: len(t.cfg.Cluster) == 0,
		Dialer:            net.Dialer{Timeout: time.Second},
		ConnWriteTimeout:  2 * time.Second,
		ClientName:        "libblockcache",
	}
	if t.tls != nil {
		o.TLSConfig = t.tls.Clone()
	}
	return o
}

// tlsConfig reads the TLS files once, at start, so that a missing or
// unreadable file stops dnsmasq with the reason rather than leaving the
// tier unreachable for ever.
func tlsConfig(cfg config.Valkey) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecure}
	if len(cfg.Cluster) == 0 {
		c.ServerName = cfg.Host
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("valkey-tls-ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("valkey-tls-ca: no PEM certificate in %s", cfg.TLSCA)
		}
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("valkey-tls-cert and valkey-tls-key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// connect creates the client (valkey-go dials and authenticates here, so a
// wrong password is reported now) and checks it with a PING.
func (t *Tier) connect() error {
	c, err := valkey.NewClient(t.options())
	if err != nil {
		return fmt.Errorf("connect %v: %w", t.cfg.Addrs(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return fmt.Errorf("ping %v: %w", t.cfg.Addrs(), err)
	}
	w, err := valkey.NewClient(t.options())
	if err != nil {
		c.Close()
		return fmt.Errorf("connect %v: %w", t.cfg.Addrs(), err)
	}
	t.wclient.Store(&w)
	t.client.Store(&c)
	return nil
}

func (t *Tier) ID() verdict.Tier { return verdict.TierValkey }

// Key is the Valkey key of k: prefix, 6 bytes of a hash of the list's
// identity, the name. The version is in the value, not the key: a list
// change then leaves the fleet's verdicts in place, each to be used again
// as long as the change did not touch its name (Revalidate), and a feed of
// changes does not fill Valkey with a copy of every verdict per version.
// Bytes per key are the cost of a fleet cache, so the list is a binary
// hash rather than text (two lists colliding in 48 bits is a 1 in 2^48
// event per pair); the name stays readable for operators. Each layout of
// the value hashes the list with a mark of its own ("ListID NUL +" since
// values carry the version's stamp, "ListID NUL *" before, "ListID NUL
// version" when the version was in the key), so releases that read values
// differently never read each other's: during a rolling upgrade old and
// new nodes each fill their own keys.
func (t *Tier) Key(k engine.Key) string {
	return t.cfg.Prefix + t.listTag(k.NS.ListID) + k.Name
}

func (t *Tier) listTag(listID string) string {
	t.tagMu.Lock()
	defer t.tagMu.Unlock()
	if t.tagCache.listID != listID || t.tagCache.tag == "" {
		h := fnv.New64a()
		h.Write([]byte(listID))
		h.Write([]byte{0, '+'})
		t.tagCache.listID, t.tagCache.tag = listID, string(h.Sum(nil)[:6])
	}
	return t.tagCache.tag
}

// value is what a key holds: the list version the verdict was computed
// from (uvarint, 3 bytes for versions below 2^21), that version's stamp (4
// bytes), and the verdict.
func value(k engine.Key, v verdict.Verdict) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 16), k.NS.Version)
	return v.AppendBinary(binary.BigEndian.AppendUint32(b, k.NS.Stamp))
}

// decode splits a value into the namespace of list listID it was computed
// under and its verdict.
func decode(listID string, b []byte) (store.Namespace, verdict.Verdict, error) {
	version, n := binary.Uvarint(b)
	if n <= 0 || len(b) < n+4 {
		return store.Namespace{}, verdict.Verdict{}, errors.New("no list version and stamp")
	}
	ns := store.Namespace{ListID: listID, Version: version, Stamp: binary.BigEndian.Uint32(b[n:])}
	v, err := verdict.Decode(b[n+4:])
	return ns, v, err
}

// Get asks Valkey with the read deadline. Any failure is a miss.
func (t *Tier) Get(ctx context.Context, k engine.Key) (verdict.Verdict, bool) {
	if t.circuit.Load() != Closed || t.cfg.Read == config.ReadNever {
		return verdict.Verdict{}, false
	}
	if t.cfg.Read == config.ReadAuto && !t.autoWantsRead() {
		t.autoSkips.Add(1)
		return verdict.Verdict{}, false
	}
	cp := t.client.Load()
	if cp == nil {
		return verdict.Verdict{}, false
	}
	c := *cp
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	start := time.Now()
	b, err := c.Do(ctx, c.B().Get().Key(t.Key(k)).Build()).AsBytes()
	cancel()
	t.observe(&t.ewmaValkey, time.Since(start))
	if err != nil {
		if valkey.IsValkeyNil(err) {
			t.fails.Store(0)
			t.misses.Add(1)
			return verdict.Verdict{}, false
		}
		t.failed(err)
		return verdict.Verdict{}, false
	}
	t.fails.Store(0)
	old, v, err := decode(k.NS.ListID, b)
	if err != nil {
		t.corrupt.Add(1)
		t.misses.Add(1)
		t.logf("blockcache: valkey value for %q ignored: %v", k.Name, err)
		return verdict.Verdict{}, false
	}
	if old != k.NS {
		if t.stillValid == nil || !t.stillValid(old, k.NS, k.Name) {
			t.stale.Add(1)
			t.misses.Add(1)
			return verdict.Verdict{}, false
		}
		t.revalidated.Add(1)
	}
	t.hits.Add(1)
	return v, true
}

func (t *Tier) failed(err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		t.timeouts.Add(1)
	} else {
		t.errs.Add(1)
	}
	if int(t.fails.Add(1)) >= t.cfg.CircuitFailures && t.circuit.CompareAndSwap(Closed, Open) {
		t.opened.Add(1)
		t.logf("blockcache: valkey circuit open after %d consecutive failures (last: %v); skipping it for now", t.cfg.CircuitFailures, err)
	}
}

// Put queues a write; when the queue is full the write is dropped and
// counted, because a lookup must never wait for Valkey.
func (t *Tier) Put(k engine.Key, v verdict.Verdict) {
	if t.circuit.Load() != Closed {
		t.dropped.Add(1)
		return
	}
	t.pending.Add(1)
	select {
	case t.queue <- write{key: t.Key(k), val: value(k, v)}:
	default:
		t.pending.Add(-1)
		t.dropped.Add(1)
	}
}

// writer sends queued writes in pipelined batches.
func (t *Tier) writer() {
	defer t.wg.Done()
	batch := make([]write, 0, 256)
	for {
		select {
		case <-t.stop:
			return
		case w := <-t.queue:
			batch = append(batch[:0], w)
		more:
			for len(batch) < cap(batch) {
				select {
				case w := <-t.queue:
					batch = append(batch, w)
				default:
					break more
				}
			}
			t.flush(batch)
			t.pending.Add(-int64(len(batch)))
		}
	}
}

func (t *Tier) flush(batch []write) {
	cp := t.wclient.Load()
	if cp == nil || t.circuit.Load() != Closed {
		t.dropped.Add(uint64(len(batch)))
		return
	}
	c := *cp
	cmds := make(valkey.Commands, len(batch))
	for i, w := range batch {
		if t.cfg.TTL > 0 {
			cmds[i] = c.B().Set().Key(w.key).Value(valkey.BinaryString(w.val)).ExSeconds(int64(t.cfg.TTL / time.Second)).Build()
		} else { // valkey-ttl=0: no expiry, Valkey's maxmemory policy evicts
			cmds[i] = c.B().Set().Key(w.key).Value(valkey.BinaryString(w.val)).Build()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var firstErr error
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.writeErrs.Add(1)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		t.written.Add(1)
	}
	if firstErr == nil {
		return
	}
	// An error reply (OOM from a full Valkey under noeviction, READONLY
	// from a replica) refuses writes while reads go on working: only a
	// failure to reach Valkey counts toward the circuit, which stops reads
	// too.
	if _, refused := valkey.IsValkeyErr(firstErr); refused {
		t.logf("blockcache: valkey refused a write: %v (verdicts are not shared until it accepts writes; reads go on)", firstErr)
		return
	}
	t.failed(firstErr)
	t.logf("blockcache: valkey write failed: %v", firstErr)
}

// Drain waits until every queued write has been sent or dropped (used by
// warm-up, and by Close for a short grace period).
func (t *Tier) Drain(ctx context.Context) error {
	for t.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// prober reconnects and closes the circuit once Valkey answers a PING.
func (t *Tier) prober() {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.CircuitOpen)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		if t.circuit.Load() == Closed {
			continue
		}
		t.probes.Add(1)
		if err := t.probe(); err != nil {
			continue
		}
		t.fails.Store(0)
		t.circuit.Store(Closed)
		t.logf("blockcache: valkey %v answers again; circuit closed", t.cfg.Addrs())
	}
}

func (t *Tier) probe() error {
	cp := t.client.Load()
	if cp == nil {
		return t.connect()
	}
	c := *cp
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return c.Do(ctx, c.B().Ping().Build()).Error()
}

// ObserveSource is called by the engine with the cost of a source lookup;
// valkey-read=auto compares it with the cost of a Valkey read.
func (t *Tier) ObserveSource(d time.Duration) { t.observe(&t.ewmaSource, d) }

func (t *Tier) observe(a *atomic.Uint64, d time.Duration) {
	old := math.Float64frombits(a.Load())
	x := float64(d)
	if old != 0 {
		x = old*0.95 + x*0.05
	}
	a.Store(math.Float64bits(x))
}

// autoWantsRead reads Valkey while it is measured faster than the source,
// and otherwise still one read in 64 so both figures stay current.
func (t *Tier) autoWantsRead() bool {
	v, s := math.Float64frombits(t.ewmaValkey.Load()), math.Float64frombits(t.ewmaSource.Load())
	if v == 0 || s == 0 || v < s {
		return true
	}
	return t.autoCalls.Add(1)%64 == 0
}

// Flush is a no-op: every value carries its list version, so there is
// never anything stale in it to drop.
func (t *Tier) Flush() {}

func (t *Tier) Stats() engine.TierStats {
	return engine.TierStats{
		Tier: verdict.TierValkey, Hits: t.hits.Load(), Misses: t.misses.Load(), Errors: t.errs.Load(),
		Extra: map[string]uint64{
			"timeouts": t.timeouts.Load(), "corrupt": t.corrupt.Load(), "dropped_writes": t.dropped.Load(),
			"stale": t.stale.Load(), "revalidated": t.revalidated.Load(),
			"written": t.written.Load(), "write_errors": t.writeErrs.Load(), "circuit_open": uint64(t.circuit.Load()),
			"circuit_opened": t.opened.Load(), "probes": t.probes.Load(), "auto_skips": t.autoSkips.Load(),
			"ewma_valkey_ns": uint64(math.Float64frombits(t.ewmaValkey.Load())),
			"ewma_source_ns": uint64(math.Float64frombits(t.ewmaSource.Load())),
		},
	}
}

// CircuitOpen reports whether Valkey is being skipped.
func (t *Tier) CircuitOpen() bool { return t.circuit.Load() != Closed }

// Client returns the connected client, or nil; used by tooling for stats.
func (t *Tier) Client() valkey.Client {
	if cp := t.client.Load(); cp != nil {
		return *cp
	}
	return nil
}

// Close stops the writer after a short grace period for queued writes.
func (t *Tier) Close() error {
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Drain(ctx)
		cancel()
		close(t.stop)
		t.wg.Wait()
		if c := t.Client(); c != nil {
			c.Close()
		}
		if w := t.wclient.Load(); w != nil {
			(*w).Close()
		}
	})
	return nil
}
