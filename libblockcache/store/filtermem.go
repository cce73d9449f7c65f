package store

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapBlocks allocates a filter's n zeroed blocks outside Go's heap and
// unmaps them once f is unreachable.
//
// On the heap a filter counted as live data, and Go lets garbage grow to
// as much again before it collects (GOGC=100): loading a 157 MiB filter
// for a 100M-name list left dnsmasq at 350 MiB, and a billion names would
// hold ~1.5 GB of slack beside the filter's 1.5 GB. Mapped, only the rest
// of the heap sets how much garbage waits.
//
// Huge pages (MADV_HUGEPAGE) were tried and not asked for: probes did not
// measurably speed up (BenchmarkFilterLarge), and on the benchmark VM
// zeroing 2 MiB pages at their first touch slowed a 100M-name load from
// ~0.3 s to as much as 1.2 s.
//
// Every method that holds a pointer into the blocks keeps f alive until it
// is done with it (runtime.KeepAlive): the pointer alone does not.
//
// A mapping the kernel refuses is an error the build reports (lookups then
// use SQL), where the heap would have ended the process.
//
// The blocks are left out of core dumps (MADV_DONTDUMP): at a billion
// names they are 1.5 GB of bits that no one debugging a crash needs, and
// writing them would hold up dnsmasq's restart.
func mapBlocks(f *filter, n int64) error {
	size := n * 64
	mem, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return fmt.Errorf("map %d MiB for the filter: %w", size>>20, err)
	}
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP) // an older kernel without it dumps them
	f.blocks = unsafe.Slice((*[8]uint64)(unsafe.Pointer(&mem[0])), n)
	runtime.AddCleanup(f, func(m []byte) { _ = syscall.Munmap(m) }, mem)
	return nil
}
