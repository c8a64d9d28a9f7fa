/* test_jsonw.c - the JSON writer: commas, escaping, UTF-8 repair, numbers, growth, errors. */
#include "jsonw.h"
#include "t.h"

#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>

static void t_nested_commas(void)
{
    char stack[8];
    jsonw w;
    jw_init(&w, stack, sizeof stack);
    jw_obj_begin(&w);
    jw_kcstr(&w, "a", "x");
    jw_kint(&w, "b", -3);
    jw_key(&w, "c");
    jw_arr_begin(&w);
    jw_int(&w, 1);
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_arr_begin(&w);
    jw_arr_end(&w);
    jw_null(&w);
    jw_bool(&w, 1);
    jw_bool(&w, 0);
    jw_raw(&w, "{\"r\":1}", 7);
    jw_arr_end(&w);
    jw_key(&w, "d");
    jw_obj_begin(&w);
    jw_kbool(&w, "e", 0);
    jw_obj_end(&w);
    jw_kcstr(&w, "n", NULL);
    jw_kstr(&w, "s", "abc", 2);
    jw_obj_end(&w);
    T_EQ_INT(w.err, 0);
    T_EQ_STR(w.buf, "{\"a\":\"x\",\"b\":-3,\"c\":[1,{},[],null,true,false,{\"r\":1}],"
                    "\"d\":{\"e\":false},\"n\":null,\"s\":\"ab\"}");
    T_EQ_INT(w.len, strlen(w.buf));
    T_CHECK(w.owned);
    T_CHECK(w.buf != stack);
    jw_free(&w);
}

static void t_stack_buffer_no_alloc(void)
{
    char stack[64];
    jsonw w;
    jw_init(&w, stack, sizeof stack);
    T_EQ_STR(w.buf, "");
    jw_arr_begin(&w);
    jw_int(&w, 1);
    jw_int(&w, 2);
    jw_arr_end(&w);
    T_CHECK(w.buf == stack);
    T_CHECK(!w.owned);
    T_EQ_STR(stack, "[1,2]");
    jw_free(&w); /* must not free the stack buffer */
}

static void t_null_initial(void)
{
    jsonw w;
    jw_init(&w, NULL, 0);
    T_CHECK(w.buf == NULL);
    jw_cstr(&w, "hi");
    T_EQ_STR(w.buf, "\"hi\"");
    size_t n = 0;
    char *s = jw_take(&w, &n);
    T_EQ_STR(s, "\"hi\"");
    T_EQ_INT(n, 4);
    T_CHECK(w.buf == NULL && w.len == 0);
    free(s);
    /* take from a stack buffer copies */
    char stack[32];
    jw_init(&w, stack, sizeof stack);
    jw_int(&w, 42);
    s = jw_take(&w, NULL);
    T_EQ_STR(s, "42");
    T_CHECK(s != stack);
    free(s);
}

static void t_growth_large(void)
{
    char stack[16];
    jsonw w;
    jw_init(&w, stack, sizeof stack);
    jw_arr_begin(&w);
    for (int i = 0; i < 10000; i++)
        jw_int(&w, i);
    jw_arr_end(&w);
    T_EQ_INT(w.err, 0);
    /* length: 10 one-digit, 90 two, 900 three, 9000 four digits + 9999 commas + 2 brackets */
    T_EQ_INT(w.len, 10 + 180 + 2700 + 36000 + 9999 + 2);
    T_CHECK(!strncmp(w.buf, "[0,1,2,", 7));
    T_CHECK(!strcmp(w.buf + w.len - 6, ",9999]"));
    jw_free(&w);
}

static void t_escapes(void)
{
    jsonw w;
    jw_init(&w, NULL, 0);
    const char in[] = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f" "\0" "z";
    jw_str(&w, in, sizeof in - 1);
    T_EQ_STR(w.buf, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\\u0000z\"");
    jw_free(&w);

    jw_init(&w, NULL, 0);
    jw_obj_begin(&w);
    jw_kcstr(&w, "k\"\n", "v");
    jw_obj_end(&w);
    T_EQ_STR(w.buf, "{\"k\\\"\\n\":\"v\"}");
    jw_free(&w);

    jw_init(&w, NULL, 0);
    jw_str(&w, "", 0);
    T_EQ_STR(w.buf, "\"\"");
    jw_free(&w);
}

static void check_str(const char *in, size_t n, const char *want)
{
    jsonw w;
    jw_init(&w, NULL, 0);
    jw_str(&w, in, n);
    T_EQ_INT(w.err, 0);
    T_EQ_STR(w.buf, want);
    jw_free(&w);
}

#define FFFD "\xEF\xBF\xBD"
static void t_utf8(void)
{
    /* valid: 2, 3, 4 byte sequences and the edges of the ranges */
    check_str("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15, "\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\"");
    check_str("\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF", 17,
              "\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF\"");
    /* lone continuation, overlong 2-byte lead, invalid leads F5/FF */
    check_str("a\x80" "b", 3, "\"a" FFFD "b\"");
    check_str("\xC0\xAF", 2, "\"" FFFD FFFD "\"");
    check_str("\xF5\xFF", 2, "\"" FFFD FFFD "\"");
    /* overlong 3-byte (E0 80..9F), surrogate (ED A0..), above U+10FFFF (F4 90) */
    check_str("\xE0\x80\x80", 3, "\"" FFFD FFFD FFFD "\"");
    check_str("\xED\xA0\x80", 3, "\"" FFFD FFFD FFFD "\"");
    check_str("\xF4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\"");
    /* truncated sequences: the valid prefix is one maximal subpart -> one U+FFFD */
    check_str("\xE2\x82", 2, "\"" FFFD "\"");
    check_str("\xF0\x9F\x98" "x", 4, "\"" FFFD "x\"");
    check_str("\xE2\x82\xE2\x82\xAC", 5, "\"" FFFD "\xE2\x82\xAC\"");
    check_str("\xC3", 1, "\"" FFFD "\"");
    /* a string cut inside a multi-byte sequence by n */
    check_str("\xC3\xA9", 1, "\"" FFFD "\"");
}

static void check_num(double v, const char *want)
{
    char tmp[64];
    jsonw w;
    jw_init(&w, tmp, sizeof tmp);
    jw_num(&w, v);
    T_EQ_STR(w.buf, want);
    if (isfinite(v))
        T_CHECK(strtod(w.buf, NULL) == v);
    jw_free(&w);
}

static void t_numbers(void)
{
    check_num(0, "0");
    check_num(-0.0, "-0");
    check_num(1, "1");
    check_num(-2.5, "-2.5");
    check_num(0.1, "0.1");
    check_num(0.000123, "0.000123");
    check_num(1.5e-07, "1.5e-07");
    check_num(1e20, "1e+20");
    check_num(123456789012.0, "123456789012");
    check_num(0.1 + 0.2, "0.30000000000000004");
    check_num(1.0 / 3, "0.3333333333333333");
    check_num(DBL_MAX, "1.7976931348623157e+308");
    check_num(DBL_MIN, "2.2250738585072014e-308");
    check_num(5e-324, "4.94065645841247e-324"); /* denormal: 15 digits read back */
    check_num(NAN, "null");
    check_num(INFINITY, "null");
    check_num(-INFINITY, "null");

    char tmp[32];
    jsonw w;
    jw_init(&w, tmp, sizeof tmp);
    jw_arr_begin(&w);
    jw_int(&w, LLONG_MIN);
    jw_int(&w, LLONG_MAX);
    jw_int(&w, 0);
    jw_arr_end(&w);
    T_EQ_STR(w.buf, "[-9223372036854775808,9223372036854775807,0]");
    jw_free(&w);
}

static void t_locale(void)
{
    /* A process locale with a decimal comma must not leak into JSON. Skipped if none installed. */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", NULL};
    const char *got = NULL;
    for (int i = 0; names[i] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) {
        printf("  (no decimal-comma locale installed; locale test skipped)\n");
        return;
    }
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.1f", 2.5);
    T_EQ_STR(tmp, "2,5"); /* proves the locale is active */
    check_num(2.5, "2.5");
    check_num(1.5e-07, "1.5e-07");
    setlocale(LC_NUMERIC, "C");
}

static void t_usage_errors(void)
{
    jsonw w;
    jw_init(&w, NULL, 0);
    jw_obj_end(&w);
    T_EQ_INT(w.err, JW_EUSAGE);
    jw_int(&w, 1); /* no-op now */
    T_EQ_INT(w.len, 0);
    T_CHECK(jw_take(&w, NULL) == NULL);

    jw_init(&w, NULL, 0);
    jw_arr_begin(&w);
    jw_key(&w, "k"); /* key inside an array */
    T_EQ_INT(w.err, JW_EUSAGE);
    jw_free(&w);

    jw_init(&w, NULL, 0);
    jw_arr_begin(&w);
    jw_obj_end(&w); /* mismatched */
    T_EQ_INT(w.err, JW_EUSAGE);
    jw_free(&w);

    jw_init(&w, NULL, 0);
    for (int i = 0; i < JW_MAX_DEPTH; i++)
        jw_arr_begin(&w);
    T_EQ_INT(w.err, 0);
    for (int i = 0; i < JW_MAX_DEPTH; i++)
        jw_arr_end(&w);
    T_EQ_INT(w.err, 0);
    T_EQ_INT(w.len, 2 * JW_MAX_DEPTH);
    jw_free(&w);

    jw_init(&w, NULL, 0);
    for (int i = 0; i <= JW_MAX_DEPTH; i++)
        jw_obj_begin(&w), jw_key(&w, "a");
    T_EQ_INT(w.err, JW_EUSAGE);
    jw_free(&w);
}

static void t_top_level_sequence(void)
{
    /* several top-level values are comma separated (a JSON text sequence is the caller's job) */
    jsonw w;
    jw_init(&w, NULL, 0);
    jw_int(&w, 1);
    jw_cstr(&w, "x");
    T_EQ_STR(w.buf, "1,\"x\"");
    jw_free(&w);
}

int main(void)
{
    T_RUN(t_nested_commas);
    T_RUN(t_stack_buffer_no_alloc);
    T_RUN(t_null_initial);
    T_RUN(t_growth_large);
    T_RUN(t_escapes);
    T_RUN(t_utf8);
    T_RUN(t_numbers);
    T_RUN(t_locale);
    T_RUN(t_usage_errors);
    T_RUN(t_top_level_sequence);
    return T_END();
}
