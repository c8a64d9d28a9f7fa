/* abi_dump.c - makes the plugin ABI of <aigw/plugin.h> visible to the ABI guard
 * (scripts/abi_check.sh). Never installed, never loaded by aigw.
 *
 * Built two ways:
 *   cc -g -O0 -shared -fPIC -I<sdk>/include abi_dump.c -o abi.so
 *       A shared object whose exported functions take every public type, so that its debug info
 *       (read by abidw / abidiff) holds the complete layout: every struct member with its type and
 *       offset, every function-pointer signature of the host table, the descriptor and the
 *       provider table, every named enum with its values.
 *   cc -DAIGW_ABI_CONSTANTS -I<sdk>/include abi_dump.c -o consts && ./consts
 *       Prints "NAME VALUE" for what debug info does not carry: macros and the enumerators of the
 *       anonymous enums (return codes, descriptor flags).
 *
 * When plugin.h gains a public type or constant, add it here (the guard fails on a public name
 * it does not cover). */
#include <aigw/plugin.h>

#ifndef AIGW_ABI_CONSTANTS

/* The real entry point's type, as the loader calls it. */
AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen);
AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  (void)h, (void)err, (void)errlen;
  return 0;
}

/* One parameter per public type (the handles are reached through the host table). */
AIGW_EXPORT void aigw_abi_types(aigw_host *host, aigw_plugin *plugin, aigw_provider *provider,
                                aigw_usage *usage, aigw_http_spec *spec, aigw_str *str,
                                aigw_req *req, aigw_json *json, aigw_event *ev, aigw_call *call,
                                aigw_diag *diag, aigw_done_fn done, aigw_plugin_entry_fn entry);
AIGW_EXPORT void aigw_abi_types(aigw_host *host, aigw_plugin *plugin, aigw_provider *provider,
                                aigw_usage *usage, aigw_http_spec *spec, aigw_str *str,
                                aigw_req *req, aigw_json *json, aigw_event *ev, aigw_call *call,
                                aigw_diag *diag, aigw_done_fn done, aigw_plugin_entry_fn entry) {
  (void)host, (void)plugin, (void)provider, (void)usage, (void)spec, (void)str, (void)req;
  (void)json, (void)ev, (void)call, (void)diag, (void)done, (void)entry;
}

/* The named enums, by value (their enumerators and values are in the debug info). */
AIGW_EXPORT void aigw_abi_enums(aigw_status a, aigw_call_status b, aigw_which c,
                                aigw_event_kind d, aigw_log_level e, aigw_metric_kind f,
                                aigw_json_type g, aigw_api h);
AIGW_EXPORT void aigw_abi_enums(aigw_status a, aigw_call_status b, aigw_which c,
                                aigw_event_kind d, aigw_log_level e, aigw_metric_kind f,
                                aigw_json_type g, aigw_api h) {
  (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)h;
}

#else /* AIGW_ABI_CONSTANTS */

#include <stdio.h>
#include <string.h>

#define P(name) printf("%s %lld\n", #name, (long long)(name))

int main(void) {
  P(AIGW_ABI_MAJOR);
  P(AIGW_ABI_MINOR); /* may grow within a major: the guard allows a larger value */
  /* anonymous enum: return codes of host calls */
  P(AIGW_OK);
  P(AIGW_E_INVAL);
  P(AIGW_E_PHASE);
  P(AIGW_E_NOTFOUND);
  P(AIGW_E_NOMEM);
  P(AIGW_E_STATE);
  /* anonymous enum: descriptor flags */
  P(AIGW_WANTS_EVENTS);
  P(AIGW_IS_PROVIDER);
  /* the entry symbol's name; what AIGW_STR gives */
  printf("AIGW_PLUGIN_ENTRY_SYMBOL %s\n", AIGW_PLUGIN_ENTRY_SYMBOL);
  {
    aigw_str s = AIGW_STR("abc");
    printf("AIGW_STR %zu\n", s.n);
  }
  return 0;
}

#endif
