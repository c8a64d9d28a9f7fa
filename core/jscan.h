/* jscan.h - allocation-free lookup of one top-level member of a JSON object (see jscan.c). */
#ifndef AIGW_JSCAN_H
#define AIGW_JSCAN_H
#include <stddef.h>

/* Checks that text[0..n) is one JSON object (structure, strings, literals, numbers; UTF-8 is not
 * validated) and finds its first member named key (compared byte-wise; keys written with escapes
 * do not match). Returns 1 and the value's bytes in *vstart and *vlen (pointing into text) when found,
 * 0 when the object has no such member, -1 when the text is not a JSON object. */
int jscan_member(const char *text, size_t n, const char *key, const char **vstart, size_t *vlen);

/* Every top-level member of the JSON object text[0..n), in order, into out[0..max): name bytes
 * (between the quotes, escapes not decoded) and value bytes, pointing into text. Returns 1 with
 * *count members, 0 when the object has more than max members (the first max are in out), -1 when
 * the text is not a JSON object. One pass: what several jscan_member calls would scan again. */
typedef struct jscan_ent {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
} jscan_ent;
int jscan_index(const char *text, size_t n, jscan_ent *out, size_t max, size_t *count);

#endif
