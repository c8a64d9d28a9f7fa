/* abi_request_peer.c - abi_request.c built under a second name (a route lists each plugin once),
 * so that two instances with different priorities can exchange meta and show the hook order. */
#define ABI_REQ_NAME "abi_request_peer"
#define ABI_REQ_PRIORITY 5
#include "abi_request.c"
