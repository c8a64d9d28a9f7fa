/* plugin_loader.h - finds, loads and checks plugin shared objects.
 *
 * A process-wide registry (the core's documented registry of loaded libraries, guarded by a
 * mutex): each library is dlopen'ed once (RTLD_NOW | RTLD_LOCAL), its entry called once with the
 * host table, its descriptor checked (ABI major equal, minor <= host's, struct_size large enough,
 * name present, provider table consistent with AIGW_IS_PROVIDER). Libraries are never dlclose'd:
 * in-flight callbacks may hold their function pointers. */
#ifndef AIGW_PLUGIN_LOADER_H
#define AIGW_PLUGIN_LOADER_H

#include <stddef.h>
#include "aigw/plugin.h"

typedef struct plug_lib {
  char *path;               /* resolved file path; owned by the registry */
  const aigw_plugin *desc;  /* static storage inside the library */
  void *handle;             /* dlopen handle */
  struct plug_lib *next;
} plug_lib;

/* Loads plugin `name`: "<dir>/<name>.so" for each dir of paths in order (a name containing '/'
 * is taken as a file path). Returns the registry entry (process lifetime), or NULL with a message
 * for the user in err, e.g.
 *   "plugin 'foo': /x/foo.so was built for plugin ABI 2.0, this aigw provides ABI 1.0"
 *   "plugin 'foo' not found in: build/plugins, /usr/lib/aigw/plugins"
 * Main thread only. */
const plug_lib *plug_load(const char *name, char *const *paths, size_t npaths, char *err,
                          size_t errlen);

/* Iterates the registry (admin listing): returns the first entry, then ->next. */
const plug_lib *plug_list(void);

/* The host function table handed to plugins (core/host.c). Process lifetime. */
const aigw_host *host_table(void);

#endif
