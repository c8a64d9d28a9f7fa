/* store.h - in-process shared state for plugins: windowed counters and key-value with TTL.
 *
 * The embedded default behind the host's store service (rate limits, budgets, caches). Keys are
 * arbitrary bytes. Counters and key-value entries share one key space; a key's type is fixed by
 * the first use of a live entry (a counter key read with store_get is "missing", store_set on a
 * counter key fails). Once an entry has expired it is gone, and its key may be reused as either
 * type.
 *
 * CLOCK: every call takes now_ms, any monotonic millisecond clock (tests pass a simulated one).
 * A now_ms smaller than an earlier one is tolerated: the entry's current window is kept.
 *
 * MEMORY: at most max_entries entries. Entries are spread over up to 64 shards by a keyed hash
 * (SipHash-1-3 with a random key, so clients cannot aim keys at one shard); each shard holds at
 * most max_entries / nshards entries (nshards is chosen so that each shard holds 16 or more, one
 * shard below 32 entries). When a shard is full, its expired entries are reclaimed first, then its
 * least-recently-used entry is evicted (LRU order per shard: get, set and incr count as uses).
 * An evicted counter starts again from 0.
 *
 * SLIDING WINDOW: windows are fixed intervals [k*W, (k+1)*W) of the clock (W = window_ms). With c
 * the sum of the window holding now_ms, p the sum of the window just before it and
 * e = now_ms - start of the current window, the total over the last W ms is estimated as
 *     total = c + ceil(p * (W - e) / W)
 * i.e. the previous window counts in proportion to the part of it still inside [now-W, now].
 * It is exact for window-aligned reads (e = 0: total = c + p) and rounds up in between, so a limit
 * check errs on the refusing side. A counter whose windows are both older than now contributes 0
 * and is expired (reclaimable). window_ms 0 means a plain counter: no window, no expiry (still
 * subject to LRU eviction). Using a key with a different window_ms restarts its counter.
 * Sums saturate at INT64_MIN/INT64_MAX.
 *
 * OWNERSHIP: keys and values are copied in; the store keeps nothing of the caller's. store_get
 * hands out a malloc'd copy the caller frees with free().
 *
 * THREADS: all functions are thread-safe (one mutex per shard, held for O(1) work except
 * reclamation and sweeping), except store_free, which must not race with anything.
 */
#ifndef AIGW_STORE_H
#define AIGW_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store;

/* Returns a store for at most max_entries entries (> 0), or NULL (max_entries 0, ENOMEM). */
store *store_new(size_t max_entries);
/* Frees the store and everything in it. s may be NULL. */
void store_free(store *s);

/* Adds `by` (0 reads, negative refunds) to the counter `key` in windows of window_ms and returns
 * the sliding total over the last window_ms ending at now_ms, after the add (formula above).
 * Reading (by == 0) a missing key returns 0 without creating it. If the key holds a live
 * key-value entry, or memory runs out, nothing changes and 0 is returned (callers limiting
 * requests fail open). */
int64_t store_incr(store *s, const char *key, size_t klen, int64_t by, uint64_t window_ms,
                   uint64_t now_ms);

/* Atomic check-and-add for "reserve, then settle": adds `by` only if the windowed total after
 * adding would be <= limit; a `by` <= 0 (refund, read) is always applied. Returns 1 added,
 * 0 refused, -1 if the key holds a key-value entry or on ENOMEM (nothing changed). *total (may be
 * NULL) gets the windowed total: after the add if added, the current one otherwise (0 on -1).
 * A refused call on a missing key creates nothing. Many threads calling this on one key never
 * take the total above limit. */
int store_incr_if_below(store *s, const char *key, size_t klen, int64_t by, int64_t limit,
                        uint64_t window_ms, uint64_t now_ms, int64_t *total);

/* Sets key to a copy of val[0..vlen) expiring ttl_ms after now_ms (0 = never). Replaces an
 * existing key-value entry (value and TTL). Returns 0, or -1 on ENOMEM or if key is a live counter
 * (nothing changed then). */
int store_set(store *s, const char *key, size_t klen, const void *val, size_t vlen, uint64_t ttl_ms,
              uint64_t now_ms);
/* Looks key up at now_ms. Returns 0 and, if val is not NULL, a malloc'd copy in *val (with one
 * extra NUL byte after the vlen bytes, so text values are C strings; caller frees) and its length
 * in *vlen (vlen may be NULL). Returns -1 if missing, expired, a counter, or on ENOMEM. */
int store_get(store *s, const char *key, size_t klen, void **val, size_t *vlen, uint64_t now_ms);
/* Removes key (either type). Returns 0 if an entry was removed, -1 if there was none. */
int store_del(store *s, const char *key, size_t klen);
/* Drops all entries expired at now_ms (TTL passed, counters whose windows are both past);
 * returns how many. Meant for a periodic timer; costs O(expired * log n) per shard. */
size_t store_sweep(store *s, uint64_t now_ms);
/* Number of entries held, including expired ones not reclaimed yet. */
size_t store_count(store *s);

#endif
