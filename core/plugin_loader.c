/* plugin_loader.c - finds, loads and checks plugin shared objects (see plugin_loader.h).
 *
 * The registry is a singly linked list of plug_lib entries, newest first, guarded by one mutex.
 * Entries are published only once fully checked and are never changed or freed afterwards, so
 * plug_list readers may walk ->next without the lock once they hold the head. A library that fails
 * a check is dlclose'd at once: no function pointer from it has been handed out yet. */
#include "plugin_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t plug_mu = PTHREAD_MUTEX_INITIALIZER;
static plug_lib *plug_head;

/* The size of a version 1.0 descriptor: everything up to and including `provider`. */
#define PLUG_V10_SIZE (offsetof(aigw_plugin, provider) + sizeof(((aigw_plugin *)0)->provider))
#define PROV_V10_SIZE (offsetof(aigw_provider, on_event) + sizeof(((aigw_provider *)0)->on_event))

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Plugin names are [a-z0-9_]+ (plugin.h). */
static int valid_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Finds the file for `name`: candidate written to out; returns 0, or -1 with err set. */
static int plug_find(const char *name, char *const *paths, size_t npaths, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    if (strchr(name, '/')) {
        if (access(name, F_OK) != 0) {
            seterr(err, errlen, "plugin '%s': %s: %s", name, name, strerror(errno));
            return -1;
        }
        snprintf(out, outlen, "%s", name);
        return 0;
    }
    for (size_t i = 0; i < npaths; i++) {
        if (!paths[i] || !*paths[i])
            continue;
        int n = snprintf(out, outlen, "%s/%s.so", paths[i], name);
        if (n < 0 || (size_t)n >= outlen)
            continue;
        if (access(out, F_OK) == 0)
            return 0;
    }
    /* "plugin 'foo' not found in: build/plugins, /usr/lib/aigw/plugins" */
    size_t off = 0;
    int n = snprintf(err, errlen, "plugin '%s' not found in: ", name);
    if (n < 0 || !err)
        return -1;
    off = (size_t)n < errlen ? (size_t)n : errlen;
    if (npaths == 0 && off < errlen)
        snprintf(err + off, errlen - off, "(no plugin_paths configured)");
    for (size_t i = 0; i < npaths && off < errlen; i++) {
        n = snprintf(err + off, errlen - off, "%s%s", i ? ", " : "", paths[i] ? paths[i] : "");
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return -1;
}

/* Checks a descriptor; returns 0 or -1 with err set. file is the resolved path, for messages. */
static int plug_check(const char *name, const char *file, const aigw_plugin *d, char *err,
                      size_t errlen)
{
    if (d->abi_major != AIGW_ABI_MAJOR || d->abi_minor > AIGW_ABI_MINOR) {
        seterr(err, errlen,
               "plugin '%s': %s was built for plugin ABI %u.%u, this aigw provides ABI %d.%d%s", name,
               file, (unsigned)d->abi_major, (unsigned)d->abi_minor, AIGW_ABI_MAJOR, AIGW_ABI_MINOR,
               d->abi_major != AIGW_ABI_MAJOR ? " (rebuild it against this aigw's SDK)"
                                              : " (upgrade aigw or use an older build of the plugin)");
        return -1;
    }
    if (d->struct_size < PLUG_V10_SIZE) {
        seterr(err, errlen,
               "plugin '%s': %s has a descriptor of %u bytes, ABI %d.%d needs at least %zu (was it "
               "built with AIGW_PLUGIN_HEADER?)",
               name, file, (unsigned)d->struct_size, AIGW_ABI_MAJOR, AIGW_ABI_MINOR, PLUG_V10_SIZE);
        return -1;
    }
    if (!valid_name(d->name)) {
        seterr(err, errlen, "plugin '%s': %s declares an invalid name '%s' (must match [a-z0-9_]+)",
               name, file, d->name ? d->name : "(null)");
        return -1;
    }
    int is_prov = (d->flags & AIGW_IS_PROVIDER) != 0;
    if (is_prov != (d->provider != NULL)) {
        seterr(err, errlen,
               "plugin '%s': %s is inconsistent: AIGW_IS_PROVIDER is %s but the provider table is %s",
               name, file, is_prov ? "set" : "not set", d->provider ? "present" : "NULL");
        return -1;
    }
    if (d->provider && d->provider->struct_size < PROV_V10_SIZE) {
        seterr(err, errlen,
               "plugin '%s': %s has a provider table of %u bytes, ABI %d.%d needs at least %zu",
               name, file, (unsigned)d->provider->struct_size, AIGW_ABI_MAJOR, AIGW_ABI_MINOR,
               PROV_V10_SIZE);
        return -1;
    }
    return 0;
}

const plug_lib *plug_load(const char *name, char *const *paths, size_t npaths, char *err,
                          size_t errlen)
{
    char file[PATH_MAX], real[PATH_MAX];
    plug_lib *lib = NULL;

    if (err && errlen)
        err[0] = '\0';
    if (!name || !*name) {
        seterr(err, errlen, "plugin name is empty");
        return NULL;
    }
    if (plug_find(name, paths, npaths, file, sizeof file, err, errlen) != 0)
        return NULL;
    if (!realpath(file, real))
        snprintf(real, sizeof real, "%s", file);

    pthread_mutex_lock(&plug_mu);
    for (plug_lib *l = plug_head; l; l = l->next) {
        if (strcmp(l->path, real) == 0) {
            lib = l;
            goto done;
        }
    }

    dlerror();
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *de = dlerror();
        seterr(err, errlen, "plugin '%s': cannot load %s: %s", name, real, de ? de : "unknown error");
        goto done;
    }
    aigw_plugin_entry_fn entry;
    void *sym = dlsym(h, AIGW_PLUGIN_ENTRY_SYMBOL);
    memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer without a warning */
    if (!entry) {
        seterr(err, errlen, "plugin '%s': %s does not export %s() (is it an aigw plugin?)", name, real,
               AIGW_PLUGIN_ENTRY_SYMBOL);
        dlclose(h);
        goto done;
    }
    char perr[512] = "";
    const aigw_plugin *d = entry(host_table(), perr, sizeof perr);
    if (!d) {
        seterr(err, errlen, "plugin '%s': %s refused to load: %s", name, real,
               perr[0] ? perr : "no reason given");
        dlclose(h);
        goto done;
    }
    if (plug_check(name, real, d, err, errlen) != 0) {
        dlclose(h);
        goto done;
    }
    lib = calloc(1, sizeof *lib);
    char *p = strdup(real);
    if (!lib || !p) {
        free(lib);
        free(p);
        lib = NULL;
        seterr(err, errlen, "plugin '%s': out of memory", name);
        dlclose(h);
        goto done;
    }
    lib->path = p;
    lib->desc = d;
    lib->handle = h;
    lib->next = plug_head;
    plug_head = lib;
done:
    pthread_mutex_unlock(&plug_mu);
    return lib;
}

const plug_lib *plug_list(void)
{
    pthread_mutex_lock(&plug_mu);
    const plug_lib *l = plug_head;
    pthread_mutex_unlock(&plug_mu);
    return l;
}
