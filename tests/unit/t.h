/* t.h - the unit tests' tiny harness.
 * Each test file defines test functions and a main() that runs them with T_RUN and ends with
 * T_END, which prints the plain closing line "N passed, N failed" and returns non-zero on failure.
 * Checks never abort the run: a failed check marks the current test failed and goes on. */
#ifndef AIGW_T_H
#define AIGW_T_H
#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed;

#define T_CHECK(cond) do { if (!(cond)) { t_cur_failed = 1; \
    fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define T_EQ_INT(a, b) do { long long t_a_ = (long long)(a), t_b_ = (long long)(b); if (t_a_ != t_b_) { \
    t_cur_failed = 1; fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
    #a, t_a_, #b, t_b_); } } while (0)
#define T_EQ_STR(a, b) do { const char *t_a_ = (a), *t_b_ = (b); if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_)) { \
    t_cur_failed = 1; fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
    t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)"); } } while (0)
#define T_EQ_MEM(p, n, s) do { size_t t_n_ = (n); const char *t_s_ = (s); \
    if (t_n_ != strlen(t_s_) || memcmp((p), t_s_, t_n_)) { t_cur_failed = 1; \
    fprintf(stderr, "  %s:%d: \"%.*s\" != \"%s\"\n", __FILE__, __LINE__, (int)t_n_, (const char *)(p), t_s_); } } while (0)
#define T_RUN(fn) do { t_cur_failed = 0; fn(); if (t_cur_failed) { t_failed++; \
    fprintf(stderr, "FAIL %s\n", #fn); } else { t_passed++; } } while (0)
#define T_END() (printf("%d passed, %d failed\n", t_passed, t_failed), t_failed ? 1 : 0)
#endif
