/* catalog.h - the model catalog: per model, its provider family, limits, prices and capabilities.
 *
 * config.c builds one catalog per config generation from the "model_catalog" file (conf/models.json)
 * merged with the config's own "models" entries, after validating both (see config.c). The catalog
 * is owned by its cfg_gen (g->catalog), immutable once built, and may be read from any thread by
 * whoever holds a reference to the generation; nothing here keeps global state.
 *
 * Prices are USD per million tokens. Usage is the normalized aigw_usage of the SDK:
 *   input_tokens        all prompt tokens: the cached ones and the cache-write ones included
 *   cached_tokens       prompt tokens read from the provider's cache  -> cached_input rate
 *   cache_write_tokens  prompt tokens written to the provider's cache -> cache_write rate
 *   output_tokens       all completion tokens, reasoning included     -> output rate
 * so cost = (input - cached - cache_write) * input + cached * cached_input
 *         + cache_write * cache_write_rate + output * output          (all / 1e6).
 * A model without a cached_input (cache_write) rate pays the input rate for those tokens. */
#ifndef AIGW_CATALOG_H
#define AIGW_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "aigw/plugin.h"

enum {
  CAT_CAP_TOOLS = 1,
  CAT_CAP_VISION = 2,
  CAT_CAP_REASONING = 4,
  CAT_CAP_EMBEDDINGS = 8,
  CAT_CAP_JSON_SCHEMA = 16
};

/* One set of rates, USD per million tokens; a negative value means "not given". */
typedef struct cat_rates {
  double input, output, cached_input, cache_write;
} cat_rates;

/* One model. All strings and arrays are owned by the record (and so by the catalog). */
typedef struct cat_model {
  char *name;                  /* the key: the model name clients and providers use */
  char *provider;              /* provider family ("openai", "anthropic", ...), NULL = not given */
  char **aliases;              /* other names of the same model (dated snapshots, Bedrock ids) */
  size_t naliases;
  uint32_t context_window;     /* tokens; 0 = not given */
  uint32_t max_output_tokens;  /* default (and usual maximum) output limit; 0 = not given */
  uint32_t caps;               /* CAT_CAP_* */
  cat_rates base;              /* the rates; the model is priced when input and output are given */
  uint64_t long_above;         /* > 0: prompts of more input tokens use `longc` (Gemini 2.5 Pro) */
  cat_rates longc;             /* long-context rates; fields not given inherit `base` */
} cat_model;

typedef struct catalog catalog;

/* Builds a catalog from n models; takes ownership of the array and everything in it (also on
 * failure). Names and aliases are looked up exactly; when a key occurs twice, a model's own name
 * wins over another's alias and otherwise the first one wins (config.c reports such clashes
 * before it gets here). Returns NULL on ENOMEM. */
catalog *catalog_new(cat_model *models, size_t n);
void catalog_free(catalog *c); /* c may be NULL */
/* Frees what a model record owns and zeroes it. */
void cat_model_clear(cat_model *m);

size_t catalog_count(const catalog *c);
const cat_model *catalog_at(const catalog *c, size_t i);

/* The model called name[0..len) (no NUL needed), or NULL. Tried in order: the exact name or alias;
 * the name without a trailing snapshot date ("-2024-08-06", "-20250514", "@20250514"); the name
 * without a Bedrock geographic cross-region prefix ("us.", "eu.", "apac.", "jp.", "au.", "ca.",
 * "us-gov."), then also without a date. Not "global.": global profiles are priced differently and
 * are listed under their own ids. c may be NULL. */
const cat_model *catalog_find(const catalog *c, const char *name, size_t len);

/* 1 when the model has both an input and an output price. */
int cat_model_priced(const cat_model *m);

/* The cost of usage u on model m, in USD, into *usd. Returns 0, or -1 when it cannot be priced
 * (m NULL or unpriced, input tokens unknown, output tokens unknown on a model that is not an
 * embeddings model). Never guesses: a -1 must be reported as "cost unknown", not as 0. */
int catalog_cost(const cat_model *m, const aigw_usage *u, double *usd);

/* The default max output tokens of a model (for adapters whose upstream requires one, such as
 * Anthropic's max_tokens), or 0 when the model or its limit is unknown. c may be NULL. */
uint32_t catalog_max_output_tokens(const catalog *c, const char *name, size_t len);

#endif
