/* jscan.h - allocation-free lookup of one top-level member of a JSON object (see jscan.c). */
#ifndef AIGW_JSCAN_H
#define AIGW_JSCAN_H
#include <stddef.h>

/* Checks that text[0..n) is one JSON object (structure, strings, literals, numbers; UTF-8 is not
 * validated) and finds its first member named key (compared byte-wise; keys written with escapes
 * do not match). Returns 1 and the value's bytes in *vstart and *vlen (pointing into text) when found,
 * 0 when the object has no such member, -1 when the text is not a JSON object. */
int jscan_member(const char *text, size_t n, const char *key, const char **vstart, size_t *vlen);

#endif
