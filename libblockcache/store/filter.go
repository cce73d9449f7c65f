package store

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"runtime"
	"sync/atomic"

	"github.com/zeebo/xxh3"
)

// filter is a blocked Bloom filter of every domain in the rule tables of
// one list version. Most queried names are not listed; when no suffix of a
// name can be in the list, the SQL lookup is skipped and the name costs a
// few cache lines instead of a dozen B-tree probes. A false positive only
// sends the name to SQL, which has the last word. Each key touches one
// 64-byte block, so a check is one cache miss per suffix.
//
// A filter built for one version stays right for the next ones when the
// names those versions added are added to it (addShared): removed names
// only leave false positives. Snapshots then share it, and lookups read
// it while it grows, so every read of a word is atomic (a plain load on
// amd64 and arm64).
//
// Its hash is the same in every process (XXH3 of the key with a seed the
// filter carries), so a filter saved in the list by `blockcachectl
// filter` can be loaded by every node instead of rebuilt from every row.
// The seed is random per build: which names collide is not known in
// advance to anyone who cannot read the list file.
type filter struct {
	seed     uint64
	blocks   [][8]uint64
	capacity int64        // names it was sized for
	extra    atomic.Int64 // names added by addShared since it was built
}

// bitsPerKey 12 with 8 probes in one block gives about 0.5% false positives.
const bitsPerKey = 12

func newFilter(n int64) (*filter, error) {
	nb := (n*bitsPerKey + 511) / 512
	if nb < 2 {
		nb = 2
	}
	var seed [8]byte
	rand.Read(seed[:]) // never fails on Linux
	return makeFilter(binary.LittleEndian.Uint64(seed[:]), max(n, 1), nb)
}

func makeFilter(seed uint64, capacity, blocks int64) (*filter, error) {
	f := &filter{seed: seed, capacity: capacity}
	if err := mapBlocks(f, blocks); err != nil {
		return nil, err
	}
	return f, nil
}

// probe and the bit sequence of add and mayContain are the layout of a
// saved filter (TestFilterLayoutIsPinned): changing them needs a new
// filterFormat, or an older saved filter would miss listed names.
func (f *filter) probe(key string) (b *[8]uint64, h uint64) {
	h = xxh3.HashStringSeed(key, f.seed)
	hi, _ := bits.Mul64(h, uint64(len(f.blocks)))
	return &f.blocks[hi], h*0x9e3779b97f4a7c15 | 1
}

// add is for the build, before the filter is published.
func (f *filter) add(key string) {
	b, h := f.probe(key)
	for i := 0; i < 8; i++ {
		bit := h >> 55 // 9 bits: a position in the 512-bit block
		b[bit>>6] |= 1 << (bit & 63)
		h = h*0xff51afd7ed558ccd + 1
	}
	runtime.KeepAlive(f) // b points into f's mapping
}

// addShared adds a key to a filter that lookups may be reading.
func (f *filter) addShared(key string) {
	b, h := f.probe(key)
	for i := 0; i < 8; i++ {
		bit := h >> 55
		atomic.OrUint64(&b[bit>>6], 1<<(bit&63))
		h = h*0xff51afd7ed558ccd + 1
	}
	f.extra.Add(1) // also keeps f, and with it b's mapping, alive until here
}

// worn reports whether so many names were added since the build that the
// false-positive rate has risen noticeably (a quarter more names: ~1% from
// ~0.5%) and a rebuild is worth its full read of the list.
func (f *filter) worn() bool { return f.extra.Load() > f.capacity/4 }

func (f *filter) mayContain(key string) bool {
	b, h := f.probe(key)
	for i := 0; i < 8; i++ {
		bit := h >> 55
		if atomic.LoadUint64(&b[bit>>6])&(1<<(bit&63)) == 0 {
			runtime.KeepAlive(f) // b points into f's mapping
			return false
		}
		h = h*0xff51afd7ed558ccd + 1
	}
	runtime.KeepAlive(f)
	return true
}

// bytes is the memory the filter holds.
func (f *filter) bytes() int64 { return int64(len(f.blocks)) * 64 }

// anySuffix reports whether the name or one of its parents may be listed.
func (f *filter) anySuffix(n string) bool {
	if f.mayContain(n) {
		return true
	}
	for i := 0; i < len(n); i++ {
		if n[i] == '.' && f.mayContain(n[i+1:]) {
			return true
		}
	}
	return false
}
