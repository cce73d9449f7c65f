/* memo.h: the C side of the export layer's answer memo (memo.c). Hidden
 * from the library's ABI; called from Go only. */
#ifndef BLOCKCACHE_MEMO_H
#define BLOCKCACHE_MEMO_H

#include <stddef.h>
#include <stdint.h>

#define BC_HIDDEN __attribute__((visibility("hidden")))

/* Allocate the memo with room for at least n answers (rounded up to a power
 * of two); 0 turns it off. Only while no lookup runs (db_init). 0 or -1. */
BC_HIDDEN int bc_memo_configure(size_t n);
/* The identity of the list version about to be served; called before
 * lookups can see it. 0 means no answer is valid (db_cleanup). */
BC_HIDDEN void bc_memo_publish(uint64_t ident);
/* Forget every answer (SIGHUP). */
BC_HIDDEN void bc_memo_flush(void);
BC_HIDDEN void bc_memo_counts(uint64_t *hits, uint64_t *misses);

#endif
