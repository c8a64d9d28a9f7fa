/* main.c - command line: run the gateway, or check a configuration. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: aigw [-c FILE] [-v]     run the gateway (default FILE: conf/aigw.json)\n"
          "       aigw --check FILE        validate FILE, list every error, print the effective routes\n"
          "       aigw --hash-key          read an API key on stdin, print its hash for the keyauth plugin's config\n"
          "       aigw --version\n");
}

static void print_errors(const char *path, cfg_errors *errs) {
  fprintf(stderr, "%s: %zu error%s\n", path, errs->count, errs->count == 1 ? "" : "s");
  for (cfg_error *e = errs->head; e; e = e->next) fprintf(stderr, "  %s: %s\n", *e->path ? e->path : "/", e->message);
}

int main(int argc, char **argv) {
  const char *config = "conf/aigw.json";
  int check = 0;
  for (int i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) config = argv[++i];
    else if ((!strcmp(argv[i], "--check") || !strcmp(argv[i], "-t")) && i + 1 < argc) {
      check = 1;
      config = argv[++i];
    } else if (!strcmp(argv[i], "--check") || !strcmp(argv[i], "-t")) check = 1;
    else if (!strcmp(argv[i], "-v")) log_set_level(AIGW_LOG_DEBUG);
    else if (!strcmp(argv[i], "--hash-key")) {
      /* the key comes on stdin (not in the shell's history or the process list); a trailing
       * newline is not part of it */
      char key[4097];
      size_t n = fread(key, 1, sizeof key - 1, stdin);
      while (n && (key[n - 1] == '\n' || key[n - 1] == '\r')) n--;
      if (!n || n > 4096) {
        fprintf(stderr, "aigw --hash-key: give the key (1-4096 bytes) on stdin, e.g. printf %%s \"$KEY\" | aigw --hash-key\n");
        return 2;
      }
      unsigned char h[32];
      unsigned int hl = 0;
      EVP_Digest(key, n, h, &hl, EVP_sha256(), NULL);
      OPENSSL_cleanse(key, sizeof key);
      printf("sha256:");
      for (unsigned k = 0; k < hl; k++) printf("%02x", h[k]);
      printf("\n");
      return 0;
    } else if (!strcmp(argv[i], "--version")) {
      printf("aigw %s (plugin ABI %d.%d)\n", AIGW_VERSION, AIGW_ABI_MAJOR, AIGW_ABI_MINOR);
      return 0;
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || observe_init() < 0) {
    fprintf(stderr, "aigw: initialisation failed (out of memory?)\n");
    return 1;
  }
  cfg_errors errs = {0};
  cfg_gen *g = cfg_load(config, &errs);
  if (!g) {
    print_errors(config, &errs);
    cfg_errors_clear(&errs);
    return 1;
  }
  g->id = 1;
  if (check) {
    printf("%s: OK (%zu routes, %zu providers, %u workers)\n", config, g->nroutes, g->nproviders, g->workers);
    for (size_t i = 0; i < g->nroutes; i++) {
      const cfg_route *r = &g->routes[i];
      printf("  route %s: %s%s -> ", r->name, r->path ? r->path : r->path_prefix, r->path ? "" : "*");
      for (size_t t = 0; t < r->nleaves; t++)
        printf("%s%s", t ? ", " : "", r->leaves[t]->name);
      printf("\n");
      for (size_t p = 0; p < r->nplugins; p++)
        printf("    %zu. %s (priority %d)\n", p + 1, r->plugins[p]->name, r->plugins[p]->priority);
    }
    cfg_free(g);
    curl_global_cleanup();
    return 0;
  }
  server s;
  memset(&s, 0, sizeof s);
  s.config_path = config;
  s.access_log_fd = -1;
  atomic_store(&s.current, (uintptr_t)g);
  if (g->access_log_path) {
    if (!strcmp(g->access_log_path, "-")) {
      s.access_log_fd = STDOUT_FILENO;
    } else {
      s.access_log_fd = open(g->access_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (s.access_log_fd < 0) {
        fprintf(stderr, "aigw: cannot open access log %s: %s\n", g->access_log_path, strerror(errno));
        cfg_free(g);
        return 1;
      }
      s.access_log_owned = 1;
    }
  }
  g_server = &s;
  int rc = server_run(&s);
  cfg_gen *cur = (cfg_gen *)atomic_load(&s.current);
  cfg_free(cur);
  if (s.access_log_owned) close(s.access_log_fd);
  curl_global_cleanup();
  return rc == 0 ? 0 : 1;
}
