/* als_engine — see als_engine.h. */
#include "ml/als_engine.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_fs.h"

void als_engine_default(als_engine_t *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "default");
    als_params_default(&e->params);
    e->holdout = 0.1;
    e->query_num = 10;
    e->unknown_popular = true;
}

static void default_events(als_engine_t *e)
{
    if (e->nevents)
        return;
    if (e->params.implicit) {
        e->events[0] = (als_event_weight_t){"view", false, 1.0};
        e->events[1] = (als_event_weight_t){"buy", false, 4.0};
    } else {
        e->events[0] = (als_event_weight_t){"rate", true, 0};
        e->events[1] = (als_event_weight_t){"buy", false, 4.0};
    }
    e->nevents = 2;
}

#define FAIL(...) return core_errf(CORE_ERR_INVAL, errstr, errstr_size, __VA_ARGS__)

static int get_num(json_t *v, const char *name, double *out, char *errstr, size_t errstr_size)
{
    if (!json_is_number(v))
        FAIL("engine.json: %s must be a number", name);
    *out = json_number_value(v);
    if (!isfinite(*out))
        FAIL("engine.json: %s must be finite", name);
    return 0;
}

static int get_int(json_t *v, const char *name, long long lo, long long hi, long long *out,
                   char *errstr, size_t errstr_size)
{
    if (!json_is_integer(v))
        FAIL("engine.json: %s must be an integer", name);
    *out = json_integer_value(v);
    if (*out < lo || *out > hi)
        FAIL("engine.json: %s must be %lld..%lld", name, lo, hi);
    return 0;
}

static int parse_algo_params(json_t *params, als_engine_t *e, char *errstr, size_t errstr_size)
{
    const char *key;
    json_t *v;
    long long n = 0;
    /* implicitPrefs first: the defaults of other fields do not depend on it,
     * but the event defaults do. */
    json_object_foreach(params, key, v)
    {
        if (strcmp(key, "rank") == 0) {
            if (get_int(v, key, 1, ALS_MAX_RANK, &n, errstr, errstr_size))
                return CORE_ERR_INVAL;
            e->params.rank = (int)n;
        } else if (strcmp(key, "numIterations") == 0) {
            if (get_int(v, key, 1, ALS_MAX_ITERATIONS, &n, errstr, errstr_size))
                return CORE_ERR_INVAL;
            e->params.iterations = (int)n;
        } else if (strcmp(key, "lambda") == 0) {
            if (get_num(v, key, &e->params.lambda, errstr, errstr_size))
                return CORE_ERR_INVAL;
        } else if (strcmp(key, "alpha") == 0) {
            if (get_num(v, key, &e->params.alpha, errstr, errstr_size))
                return CORE_ERR_INVAL;
        } else if (strcmp(key, "implicitPrefs") == 0) {
            if (!json_is_boolean(v))
                FAIL("engine.json: implicitPrefs must be true or false");
            e->params.implicit = json_is_true(v);
        } else if (strcmp(key, "seed") == 0) {
            if (get_int(v, key, 0, INT64_MAX, &n, errstr, errstr_size))
                return CORE_ERR_INVAL;
            e->params.seed = (uint64_t)n;
        } else if (strcmp(key, "solver") == 0) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "cholesky") == 0)
                e->params.solver = ALS_SOLVER_CHOLESKY;
            else if (s && strcmp(s, "cg") == 0)
                e->params.solver = ALS_SOLVER_CG;
            else
                FAIL("engine.json: solver must be \"cholesky\" or \"cg\"");
        } else if (strcmp(key, "cgSteps") == 0) {
            if (get_int(v, key, 1, 64, &n, errstr, errstr_size))
                return CORE_ERR_INVAL;
            e->params.cg_steps = (int)n;
        } else {
            FAIL("engine.json: unknown algorithm parameter \"%s\" (known: rank, numIterations, "
                 "lambda, alpha, implicitPrefs, seed, solver, cgSteps)",
                 key);
        }
    }
    return als_params_check(&e->params, errstr, errstr_size);
}

int als_engine_parse(const char *text, size_t len, als_engine_t *e, char *errstr,
                     size_t errstr_size)
{
    als_engine_default(e);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int err = CORE_OK;
    if (!root)
        FAIL("engine.json: line %d: %s", jerr.line, jerr.text);
    if (!json_is_object(root)) {
        err = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "engine.json: not a JSON object");
        goto out;
    }
    json_t *v = json_object_get(root, "id");
    if (v) {
        const char *s = json_string_value(v);
        if (!s || !*s || strlen(s) > ALS_MODEL_MAX_NAME || strchr(s, '/')) {
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                            "engine.json: id must be a non-empty string without '/' (max %d)",
                            ALS_MODEL_MAX_NAME);
            goto out;
        }
        snprintf(e->id, sizeof(e->id), "%s", s);
    }
    json_t *algos = json_object_get(root, "algorithms");
    if (algos) {
        if (!json_is_array(algos) || json_array_size(algos) != 1) {
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                            "engine.json: algorithms must be an array of one algorithm");
            goto out;
        }
        json_t *a = json_array_get(algos, 0);
        json_t *name = json_object_get(a, "name");
        if (!json_is_object(a) || (name && (!json_is_string(name) ||
                                            strcmp(json_string_value(name), "als") != 0))) {
            err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                            "engine.json: algorithms[0].name must be \"als\"");
            goto out;
        }
        json_t *params = json_object_get(a, "params");
        if (params) {
            if (!json_is_object(params)) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                "engine.json: algorithms[0].params must be an object");
                goto out;
            }
            if ((err = parse_algo_params(params, e, errstr, errstr_size)) != CORE_OK)
                goto out;
        }
    }
    json_t *dsp = json_object_get(json_object_get(root, "datasource"), "params");
    if (dsp && json_is_object(dsp)) {
        v = json_object_get(dsp, "appName");
        if (v) {
            const char *s = json_string_value(v);
            if (!s || strlen(s) > ALS_MODEL_MAX_NAME) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                "engine.json: datasource.params.appName must be a string");
                goto out;
            }
            snprintf(e->app, sizeof(e->app), "%s", s);
        }
        json_t *ew = json_object_get(dsp, "eventWeights");
        if (ew) {
            const char *key;
            json_t *w;
            if (!json_is_object(ew) || json_object_size(ew) == 0 ||
                json_object_size(ew) > ALS_ENGINE_MAX_EVENTS) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                "engine.json: eventWeights must be an object of 1..%d events",
                                ALS_ENGINE_MAX_EVENTS);
                goto out;
            }
            json_object_foreach(ew, key, w)
            {
                als_event_weight_t *ev = &e->events[e->nevents];
                if (strlen(key) >= sizeof(ev->name) || !*key) {
                    err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                    "engine.json: bad event name in eventWeights");
                    goto out;
                }
                snprintf(ev->name, sizeof(ev->name), "%s", key);
                if (json_is_null(w)) {
                    ev->use_rating = true;
                } else if (json_is_number(w) && fabs(json_number_value(w)) <= ALS_MAX_ABS_VALUE) {
                    ev->weight = json_number_value(w);
                } else {
                    err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                    "engine.json: eventWeights.%s must be a number (|w| <= %g) "
                                    "or null (null = properties.rating)",
                                    key, ALS_MAX_ABS_VALUE);
                    goto out;
                }
                e->nevents++;
            }
        }
        json_t *evp = json_object_get(dsp, "evalParams");
        if (evp && json_is_object(evp)) {
            v = json_object_get(evp, "holdout");
            if (v && (get_num(v, "evalParams.holdout", &e->holdout, errstr, errstr_size) ||
                      e->holdout < 0 || e->holdout >= 1)) {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                "engine.json: evalParams.holdout must be in [0, 1)");
                goto out;
            }
            v = json_object_get(evp, "queryNum");
            long long n = 0;
            if (v) {
                if ((err = get_int(v, "evalParams.queryNum", 1, 1000, &n, errstr, errstr_size)))
                    goto out;
                e->query_num = (int)n;
            }
        }
    }
    json_t *sp = json_object_get(json_object_get(root, "serving"), "params");
    if (sp && json_is_object(sp)) {
        v = json_object_get(sp, "unknownUser");
        if (v) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "popular") == 0)
                e->unknown_popular = true;
            else if (s && strcmp(s, "empty") == 0)
                e->unknown_popular = false;
            else {
                err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                                "engine.json: serving.params.unknownUser must be \"popular\" "
                                "or \"empty\"");
                goto out;
            }
        }
    }
    default_events(e);
out:
    json_decref(root);
    return err;
}

int als_engine_load(const char *path, als_engine_t *e, char *errstr, size_t errstr_size)
{
    char *buf;
    size_t n;
    int err = core_fs_read_file(path, ALS_ENGINE_MAX_FILE, &buf, &n);
    if (err == CORE_ERR_TOO_LARGE)
        return core_errf(err, errstr, errstr_size, "%s: larger than %d bytes", path,
                         ALS_ENGINE_MAX_FILE);
    if (err)
        return core_errf(err, errstr, errstr_size, "%s: %s", path, strerror(err));
    err = als_engine_parse(buf, n, e, errstr, errstr_size);
    free(buf);
    return err;
}
