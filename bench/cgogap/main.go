// Command cgogap is a c-shared library with one empty exported function,
// used by gap.c to measure what a call from C into Go costs when the calls
// come at intervals, as dnsmasq's do (bench/cgogap.sh).
package main

import "C"

//export empty
func empty() C.int { return 0 }

func main() {}
