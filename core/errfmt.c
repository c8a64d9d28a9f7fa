/* Error bodies in the client's wire format (the route's ingress API): OpenAI's
 * {"error":{message,type,param,code}} or Anthropic's {"type":"error","error":{type,message}}. */
#include "core.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *err_anthropic_type(int status) {
  switch (status) {
  case 400: return "invalid_request_error";
  case 401: return "authentication_error";
  case 402: return "billing_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 408: return "timeout_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 503: case 529: return "overloaded_error";
  case 504: return "timeout_error";
  default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

char *err_json(aigw_api api, int status, const char *type, const char *code, const char *msg) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  if (api == AIGW_API_MESSAGES) {
    cJSON_AddStringToObject(root, "type", "error");
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "type", err_anthropic_type(status));
    cJSON_AddStringToObject(e, "message", msg ? msg : status_reason(status));
  } else {
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg ? msg : status_reason(status));
    cJSON_AddStringToObject(e, "type", type ? type : (status >= 500 ? "server_error" : "invalid_request_error"));
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
  }
  char *txt = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return txt;
}
