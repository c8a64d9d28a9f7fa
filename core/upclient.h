/* upclient.h - the built-in HTTP/1.1 client (upclient.c) as a transport for any owner: the proxied
 * upstream request (upc_start & co. in core.h wrap it) and plugin call-outs (calls.c).
 *
 * The owner describes itself with a sink (a table of functions, usually static const) and a ctx
 * pointer, and gives the address of its own `upconn *` field (the slot): the client stores the
 * connection there while the exchange runs and clears it when the connection is detached (done,
 * failed, or upc_close). At most one of on_done / upc_close ends an exchange; after either, the
 * client never calls the sink again for it. */
#ifndef AIGW_UPCLIENT_H
#define AIGW_UPCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct evbuffer;

enum { UPC_BODY_OK = 0, UPC_BODY_PAUSE = 1, UPC_BODY_ABORT = -1 };

typedef struct upc_sink {
  /* Writes the request into out: request line with path (pathlen bytes, may start with '?': then
   * the caller writes '/' first), "Host: " with host (hostlen bytes), headers, blank line, body.
   * Returns 0, or -1 (then the exchange fails with CURLE_OUT_OF_MEMORY). */
  int (*build)(void *ctx, struct evbuffer *out, const char *path, size_t pathlen, const char *host, size_t hostlen);
  /* The final response's status line and header lines, each with its line end (interim 1xx
   * responses are skipped). */
  void (*on_header)(void *ctx, const char *line, size_t n);
  /* Body bytes (chunked encoding removed); n == 0 once for an empty body. Returns UPC_BODY_OK,
   * UPC_BODY_PAUSE (stop reading until upc_resume) or UPC_BODY_ABORT (the exchange fails with
   * CURLE_WRITE_ERROR; the connection is closed). */
  int (*on_body)(void *ctx, const char *p, size_t n);
  /* The exchange ended: rc CURLE_OK, or an error with msg (NULL: use curl_easy_strerror). The
   * connection is already detached (*slot == NULL). Runs exactly once unless upc_close came first;
   * may run inside upc_open (a synchronous failure) -- the owner defers whatever must not. */
  void (*on_done)(void *ctx, CURLcode rc, const char *msg);
} upc_sink;

/* Starts one exchange. url must stay valid until the exchange ends (the path is reused for the
 * one retry on a fresh connection when a reused one turns out closed). connect_ms: 0 = 10 s.
 * head: the request is HEAD (the response has no body whatever its headers say).
 * Returns 0 started (or failed, and on_done already ran), 1 not eligible (nothing happened). */
int upc_open(worker *w, const char *url, const upc_sink *s, void *ctx, upconn **slot, uint32_t connect_ms, int head);

/* Ends the exchange on *slot without calling the sink: the connection is closed, never reused
 * (mid-exchange its state is unknown). No-op when *slot is NULL. */
void upc_close(upconn **slot);

/* Reads again after the sink returned UPC_BODY_PAUSE; may deliver buffered bytes (and end the
 * exchange) before it returns. */
void upc_resume(upconn *c);

#endif
