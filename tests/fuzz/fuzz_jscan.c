/* fuzz_jscan: jscan_member must agree with cJSON on every input, and jscan_index with
 * jscan_member: same verdict on "is a JSON
 * object" (for inputs cJSON accepts as an object, jscan must too; jscan may reject a few inputs
 * cJSON accepts loosely, but never accept what cJSON rejects), and the member it finds must parse
 * to the same JSON as cJSON's first member of that name. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

static const char *const keys[] = {"usage", "stream", "model", "a", ""};

/* t holds a \u escape of a UTF-16 surrogate (d800-dfff). */
static int surrogate_escape(const char *t, size_t n) {
  for (size_t i = 0; i + 5 < n; i++)
    if (t[i] == '\\' && t[i + 1] == 'u' && (t[i + 2] == 'd' || t[i + 2] == 'D') &&
        ((t[i + 3] >= '8' && t[i + 3] <= '9') || (t[i + 3] >= 'a' && t[i + 3] <= 'f') || (t[i + 3] >= 'A' && t[i + 3] <= 'F')))
      return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *t = (const char *)data;
  const char *endp = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(t, size, &endp, 0);
  if (root) { /* only whitespace may follow the value */
    const char *e = t + size;
    for (const char *q = endp; q && q < e; q++)
      if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
        cJSON_Delete(root);
        root = NULL;
        break;
      }
  }
  int is_obj = root && cJSON_IsObject(root);
  /* jscan_index (one scan, every member) must agree with jscan_member (one scan per member) */
  jscan_ent ents[8];
  size_t nents = 0;
  int irc = jscan_index(t, size, ents, 8, &nents);
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    const char *v = NULL;
    size_t vn = 0;
    int rc = jscan_member(t, size, keys[k], &v, &vn);
    if ((irc < 0) != (rc < 0)) abort();
    if (irc != 1) continue; /* not an object, or more members than the index holds */
    const jscan_ent *hit = NULL;
    for (size_t i = 0; i < nents && !hit; i++)
      if (ents[i].klen == strlen(keys[k]) && !memcmp(ents[i].key, keys[k], ents[i].klen)) hit = &ents[i];
    if ((hit != NULL) != (rc == 1)) abort();
    if (hit && (hit->val != v || hit->vlen != vn)) abort();
  }
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    const char *v = NULL;
    size_t vn = 0;
    int rc = jscan_member(t, size, keys[k], &v, &vn);
    if (rc >= 0 && !is_obj) {
      /* cJSON refused it, or it is not an object: jscan must not call it an object, except for
       * what cJSON refuses that JSON allows (none expected in the grammar we scan) */
      if (root) abort();
      /* cJSON stops at a NUL byte inside strings, and refuses \u escapes of lone UTF-16
       * surrogates, which JSON's grammar allows (jscan checks structure, not UTF-16 pairing):
       * tolerate inputs with either */
      if (!memchr(t, 0, size) && !surrogate_escape(t, size)) abort();
      continue;
    }
    if (rc < 0) continue; /* stricter than cJSON is allowed (e.g. control bytes, depth) */
    cJSON *item = NULL;
    for (cJSON *c = root->child; c; c = c->next)
      if (c->string && !strcmp(c->string, keys[k])) {
        item = c;
        break;
      }
    if (rc == 1) {
      if (!item) {
        /* cJSON decodes escaped keys; jscan compares raw bytes: a raw match implies a decoded one */
        abort();
      }
      cJSON *mine = cJSON_ParseWithLength(v, vn);
      if (!mine) abort();
      /* compare serializations: cJSON_Compare mismatches objects with duplicate keys */
      char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(item);
      if (!a || !b || strcmp(a, b)) abort();
      free(a);
      free(b);
      cJSON_Delete(mine);
    } else if (item && !strchr(keys[k], '\\')) {
      /* absent for jscan but present for cJSON: only possible when the key was written with
       * escapes in the input */
      if (!memchr(t, '\\', size)) abort();
    }
  }
  cJSON_Delete(root);
  return 0;
}
