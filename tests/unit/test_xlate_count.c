/* test_xlate_count.c - hub request -> OpenAI Responses input_tokens request
 * (plugins/common/xlate_count.h) against golden fixtures in tests/fixtures/count/ (JSON compared
 * semantically): an Anthropic count_tokens request through xl_anth_req_to_hub (what the openai
 * adapter does), a hub request with system/developer turns, files, images, refusals and
 * response_format, and the refusals (400 naming the field).
 *
 * XC_REGEN=1 rewrites the .out.json goldens from the translator (review the diff before
 * committing). */
#include "t.h"
#include "xlate.h"
#include "xlate_count.h"

#include <stdlib.h>

#define FX "tests/fixtures/count/"

static cJSON *load(const char *name) {
  char path[256];
  snprintf(path, sizeof path, FX "%s", name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "  cannot open %s\n", path);
    return NULL;
  }
  char *s = NULL;
  size_t len = 0, cap = 0, r;
  do {
    if (cap - len < 4096) {
      char *q = realloc(s, cap += 65536);
      if (!q) abort();
      s = q;
    }
    r = fread(s + len, 1, cap - len - 1, f);
    len += r;
  } while (r > 0);
  fclose(f);
  s[len] = 0;
  cJSON *j = cJSON_Parse(s);
  if (!j) fprintf(stderr, "  %s: not JSON\n", path);
  free(s);
  return j;
}

static int json_eq(const cJSON *got, const cJSON *want, const char *what) {
  if (got && want && cJSON_Compare(got, want, 1)) return 1;
  char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
  fprintf(stderr, "  %s differs\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w ? w : "(null)");
  cJSON_free(g);
  cJSON_free(w);
  return 0;
}

/* <name>.in.json (Anthropic when anth, else hub) -> xc_hub_to_input_tokens == <name>.out.json */
static void golden(const char *name, int anth, const char *model) {
  char a[128], b[128];
  snprintf(a, sizeof a, "%s.in.json", name);
  snprintf(b, sizeof b, "%s.out.json", name);
  cJSON *in = load(a);
  T_CHECK(in != NULL);
  pc_err err = {0};
  cJSON *hub = in && anth ? xl_anth_req_to_hub(in, &err) : NULL;
  const cJSON *src = anth ? hub : in;
  cJSON *got = src ? xc_hub_to_input_tokens(src, model, &err) : NULL;
  if (!got) fprintf(stderr, "  %s: error %d %s: %s\n", name, err.status, err.param, err.msg);
  T_CHECK(got != NULL);
  if (got && getenv("XC_REGEN")) {
    char path[256], *txt = cJSON_Print(got);
    snprintf(path, sizeof path, FX "%s", b);
    FILE *f = fopen(path, "wb");
    if (f && txt) fprintf(f, "%s\n", txt);
    if (f) fclose(f);
    cJSON_free(txt);
  }
  cJSON *want = load(b);
  T_CHECK(json_eq(got, want, name));
  cJSON_Delete(in);
  cJSON_Delete(hub);
  cJSON_Delete(got);
  cJSON_Delete(want);
}

static void test_anth_tools(void) { golden("anth_tools", 1, NULL); }
static void test_hub_system(void) { golden("hub_system", 0, NULL); }

/* The route's target model wins over the request's. */
static void test_model_override(void) {
  cJSON *hub = cJSON_Parse("{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  pc_err err = {0};
  cJSON *got = xc_hub_to_input_tokens(hub, "gpt-4.1", &err);
  cJSON *want = cJSON_Parse("{\"model\":\"gpt-4.1\",\"input\":[{\"type\":\"message\",\"role\":\"user\","
                            "\"content\":[{\"type\":\"input_text\",\"text\":\"hi\"}]}]}");
  T_CHECK(json_eq(got, want, "override"));
  cJSON_Delete(got);
  got = xc_hub_to_input_tokens(hub, "", &err); /* empty: the request's */
  T_CHECK(got && cJSON_IsString(cJSON_GetObjectItem(got, "model")) &&
          !strcmp(cJSON_GetObjectItem(got, "model")->valuestring, "claude-x"));
  cJSON_Delete(got);
  cJSON_Delete(want);
  cJSON_Delete(hub);
}

static void refused(const char *hub_txt, const char *needle) {
  cJSON *hub = cJSON_Parse(hub_txt);
  T_CHECK(hub != NULL);
  pc_err err = {0};
  cJSON *got = xc_hub_to_input_tokens(hub, NULL, &err);
  T_CHECK(got == NULL);
  T_EQ_INT(err.status, 400);
  if (!strstr(err.msg, needle)) {
    t_cur_failed = 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, needle);
  }
  cJSON_Delete(got);
  cJSON_Delete(hub);
}

static void test_refusals(void) {
  refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
          "messages[0]: content part type \"input_audio\"");
  refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"f1\"}}]}]}",
          "messages[0]: file_id");
  refused("{\"messages\":[],\"tools\":[{\"type\":\"anthropic\",\"anthropic\":{\"type\":\"web_search_20250305\","
          "\"name\":\"web_search\"}}]}",
          "tools[0] (\"web_search\")");
  refused("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "tool_call_id");
  refused("{\"messages\":[{\"role\":\"narrator\",\"content\":\"x\"}]}", "role \"narrator\"");
  refused("[]", "JSON object");
}

/* An Anthropic server tool survives xl_anth_req_to_hub but cannot be counted by OpenAI. */
static void test_anth_server_tool(void) {
  cJSON *in = cJSON_Parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                          "\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}");
  pc_err err = {0};
  cJSON *hub = xl_anth_req_to_hub(in, &err);
  T_CHECK(hub != NULL);
  cJSON *got = hub ? xc_hub_to_input_tokens(hub, NULL, &err) : NULL;
  T_CHECK(got == NULL);
  T_EQ_INT(err.status, 400);
  T_CHECK(strstr(err.msg, "web_search") != NULL);
  cJSON_Delete(got);
  cJSON_Delete(hub);
  cJSON_Delete(in);
}

int main(void) {
  T_RUN(test_anth_tools);
  T_RUN(test_hub_system);
  T_RUN(test_model_override);
  T_RUN(test_refusals);
  T_RUN(test_anth_server_tool);
  return T_END();
}
