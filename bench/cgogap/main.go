// Command cgogap is a c-shared library with two empty exported functions,
// one plain and one that goes through a cgopace.Pacer as the library's
// lookups do; gap.c calls them from C at intervals, as dnsmasq calls the
// library, and measures what the Go runtime costs between calls
// (bench/cgogap.sh).
package main

import "C"

import (
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/cgopace"
)

var pacer = cgopace.New(8 * time.Millisecond)

//export empty
func empty() C.int { return 0 }

//export paced
func paced() C.int {
	pacer.Enter()
	return 0
}

func main() {}
