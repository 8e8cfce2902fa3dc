/*
 * eddy app | accesskey | channel — PredictionIO's app administration
 * (compat-apis.md A.9), with the same output lines as `pio` where scripts
 * read them (`Access Key: KEY`).
 *
 * They open the store with store_open_dir(DIR): the embedded engine when no
 * event server runs on DIR, else the eddy:// engine through the running
 * server — so they work in both cases (or store_open(--store URL)).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "storage/store.h"

typedef struct app_conf {
    char *data;
    char *store;
    char *description;
    char *channel;
    char *key;
    int64_t id;
    bool all;
    bool force;
    core_strlist_t events;
} app_conf_t;

#define OPT_DATA                                                                           \
    {"data", CORE_OPT_STR, NULL, "data directory (as given to eddy eventserver)",        \
     offsetof(app_conf_t, data)}
#define OPT_STORE                                                                          \
    {"store", CORE_OPT_STR, NULL, "store URL instead of --data (redis://HOST:PORT/DB)",  \
     offsetof(app_conf_t, store)}

static const core_opt_t app_opts[] = {
    OPT_DATA,
    OPT_STORE,
    {"description", CORE_OPT_STR, NULL, "app new: a description", offsetof(app_conf_t, description)},
    {"id", CORE_OPT_INT, "0", "app new: the app id (0 = next free)", offsetof(app_conf_t, id)},
    {"access-key", CORE_OPT_STR, NULL, "app new: use this access key instead of a random one",
     offsetof(app_conf_t, key)},
    {"channel", CORE_OPT_STR, NULL, "data-delete: only this channel (default: the default channel)",
     offsetof(app_conf_t, channel)},
    {"all", CORE_OPT_BOOL, "false", "data-delete: every channel, the default one included",
     offsetof(app_conf_t, all)},
    {"force", CORE_OPT_BOOL, "false", "delete / data-delete: do not ask for confirmation",
     offsetof(app_conf_t, force)},
    CORE_OPT_END,
};

static const core_opt_t key_opts[] = {
    OPT_DATA,
    OPT_STORE,
    {"event", CORE_OPT_LIST, NULL, "new: allow only this event name (repeatable; none = all)",
     offsetof(app_conf_t, events)},
    {"key", CORE_OPT_STR, NULL, "new: use this key instead of a random one",
     offsetof(app_conf_t, key)},
    CORE_OPT_END,
};

static const core_opt_t ch_opts[] = {
    OPT_DATA,
    OPT_STORE,
    {"force", CORE_OPT_BOOL, "false", "delete: do not ask for confirmation",
     offsetof(app_conf_t, force)},
    CORE_OPT_END,
};

static int open_store(const char *cmd, const app_conf_t *c, store_t **st)
{
    char err[512];
    int rc;
    if (c->store)
        rc = store_open(c->store, NULL, st, err, sizeof err);
    else if (c->data)
        rc = store_open_dir(c->data, NULL, st, err, sizeof err);
    else
        return fprintf(stderr, "eddy %s: --data DIR or --store URL is required\n", cmd), 2;
    if (rc) {
        fprintf(stderr, "eddy %s: cannot open the store: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

/* Asks on a terminal; scripts (no tty) must pass --force. */
static bool confirm(const char *cmd, const char *what, bool force)
{
    if (force)
        return true;
    if (!isatty(0)) {
        fprintf(stderr, "eddy %s: refusing to %s without --force (stdin is not a terminal)\n",
                cmd, what);
        return false;
    }
    fprintf(stderr, "About to %s. Are you sure? (YES/no) ", what);
    char line[16];
    return fgets(line, sizeof line, stdin) && !strncmp(line, "YES", 3);
}

static void print_key_row(const char *app, int32_t id, const store_accesskey_t *k)
{
    printf("%20s | %4d | %64s | ", app, id, k->key);
    if (k->nevents == 0)
        printf("(all)");
    for (int i = 0; i < k->nevents; i++)
        printf("%s%s", i ? ", " : "", k->events[i]);
    printf("\n");
}

static int app_new(store_t *st, app_conf_t *c, const char *name)
{
    char err[512];
    store_app_t app;
    int rc = store_app_new(st, name, (int32_t)c->id, c->description ? c->description : "", &app,
                           err, sizeof err);
    if (rc) {
        fprintf(stderr, "eddy app new: %s\n", err[0] ? err : core_strerror(rc));
        return 1;
    }
    char key[STORE_ACCESSKEY_MAX + 1];
    rc = store_accesskey_new(st, app.id, c->key, NULL, 0, key, err, sizeof err);
    if (rc) {
        fprintf(stderr, "eddy app new: app created, but not its access key: %s\n", err);
        return 1;
    }
    printf("Initialized Event Store for this app ID: %d.\n", app.id);
    printf("Created new app:\n");
    printf("      Name: %s\n", app.name);
    printf("        ID: %d\n", app.id);
    if (app.description[0])
        printf("Description: %s\n", app.description);
    printf("Access Key: %s\n", key);
    return 0;
}

static int app_list(store_t *st)
{
    store_app_t *apps = NULL;
    size_t n = 0;
    int rc = store_app_list(st, &apps, &n);
    if (rc) {
        fprintf(stderr, "eddy app list: %s\n", core_strerror(rc));
        return 1;
    }
    printf("%20s | %4s | %64s | %s\n", "Name", "ID", "Access Key", "Allowed Event(s)");
    for (size_t i = 0; i < n; i++) {
        store_accesskey_t *keys = NULL;
        size_t nk = 0;
        if (store_accesskey_list(st, apps[i].id, &keys, &nk) == 0) {
            if (nk == 0)
                printf("%20s | %4d | %64s | \n", apps[i].name, apps[i].id, "(none)");
            for (size_t k = 0; k < nk; k++)
                print_key_row(apps[i].name, apps[i].id, &keys[k]);
            store_accesskey_list_free(keys, nk);
        }
    }
    printf("Finished listing %zu app(s).\n", n);
    free(apps);
    return 0;
}

static int app_show(store_t *st, const char *name)
{
    store_app_t app;
    if (store_app_get(st, name, &app) != 0) {
        fprintf(stderr, "eddy app show: app %s does not exist\n", name);
        return 1;
    }
    printf("    App Name: %s\n      App ID: %d\n Description: %s\n", app.name, app.id,
           app.description);
    store_accesskey_t *keys = NULL;
    size_t nk = 0;
    if (store_accesskey_list(st, app.id, &keys, &nk) == 0) {
        for (size_t k = 0; k < nk; k++) {
            printf("  Access Key: %s | ", keys[k].key);
            if (keys[k].nevents == 0)
                printf("(all)");
            for (int i = 0; i < keys[k].nevents; i++)
                printf("%s%s", i ? ", " : "", keys[k].events[i]);
            printf("\n");
        }
        store_accesskey_list_free(keys, nk);
    }
    store_channel_t *ch = NULL;
    size_t nch = 0;
    printf("    Channels: ");
    if (store_channel_list(st, app.id, &ch, &nch) == 0) {
        for (size_t i = 0; i < nch; i++)
            printf("%s%s (%d)", i ? ", " : "", ch[i].name, ch[i].id);
        free(ch);
    }
    printf("\n");
    return 0;
}

static int app_delete(store_t *st, app_conf_t *c, const char *name)
{
    store_app_t app;
    if (store_app_get(st, name, &app) != 0) {
        fprintf(stderr, "eddy app delete: app %s does not exist\n", name);
        return 1;
    }
    char what[256];
    snprintf(what, sizeof what, "delete app %s (id %d) with its keys, channels and data", name,
             app.id);
    if (!confirm("app delete", what, c->force))
        return 1;
    int rc = store_app_delete(st, name);
    if (rc) {
        fprintf(stderr, "eddy app delete: %s\n", core_strerror(rc));
        return 1;
    }
    printf("Deleted app %s.\n", name);
    return 0;
}

static int app_data_delete(store_t *st, app_conf_t *c, const char *name)
{
    store_app_t app;
    if (store_app_get(st, name, &app) != 0) {
        fprintf(stderr, "eddy app data-delete: app %s does not exist\n", name);
        return 1;
    }
    int32_t ch = 0;
    if (c->all) {
        ch = -1;
    } else if (c->channel && store_channel_get(st, app.id, c->channel, &ch) != 0) {
        fprintf(stderr, "eddy app data-delete: app %s has no channel %s\n", name, c->channel);
        return 1;
    }
    char what[256];
    snprintf(what, sizeof what, "delete the data of app %s (%s)", name,
             c->all ? "all channels" : c->channel ? c->channel : "default channel");
    if (!confirm("app data-delete", what, c->force))
        return 1;
    int rc = store_app_data_delete(st, app.id, ch);
    if (rc) {
        fprintf(stderr, "eddy app data-delete: %s\n", core_strerror(rc));
        return 1;
    }
    printf("Removed the data of app %s (%s).\n", name,
           c->all ? "all channels" : c->channel ? c->channel : "default channel");
    return 0;
}

static int channel_new(store_t *st, const char *appname, const char *chname)
{
    store_app_t app;
    if (store_app_get(st, appname, &app) != 0) {
        fprintf(stderr, "eddy channel new: app %s does not exist\n", appname);
        return 1;
    }
    char err[512];
    int32_t id;
    int rc = store_channel_new(st, app.id, chname, &id, err, sizeof err);
    if (rc) {
        fprintf(stderr, "eddy channel new: %s\n", err[0] ? err : core_strerror(rc));
        return 1;
    }
    printf("Created channel %s (id %d) of app %s.\n", chname, id, appname);
    return 0;
}

static int channel_list(store_t *st, const char *appname)
{
    store_app_t app;
    if (store_app_get(st, appname, &app) != 0) {
        fprintf(stderr, "eddy channel list: app %s does not exist\n", appname);
        return 1;
    }
    store_channel_t *ch = NULL;
    size_t n = 0;
    if (store_channel_list(st, app.id, &ch, &n) != 0) {
        fprintf(stderr, "eddy channel list: cannot read channels\n");
        return 1;
    }
    printf("%16s | %4s\n", "Channel", "ID");
    for (size_t i = 0; i < n; i++)
        printf("%16s | %4d\n", ch[i].name, ch[i].id);
    printf("Finished listing %zu channel(s).\n", n);
    free(ch);
    return 0;
}

static int channel_delete(store_t *st, app_conf_t *c, const char *appname, const char *chname)
{
    store_app_t app;
    if (store_app_get(st, appname, &app) != 0) {
        fprintf(stderr, "eddy channel delete: app %s does not exist\n", appname);
        return 1;
    }
    char what[256];
    snprintf(what, sizeof what, "delete channel %s of app %s and its data", chname, appname);
    if (!confirm("channel delete", what, c->force))
        return 1;
    int rc = store_channel_delete(st, app.id, chname);
    if (rc) {
        fprintf(stderr, "eddy channel delete: %s\n",
                rc == CORE_ERR_NOT_FOUND ? "no such channel" : core_strerror(rc));
        return 1;
    }
    printf("Deleted channel %s of app %s.\n", chname, appname);
    return 0;
}

int cmd_app(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy app",
        .usage =
            "eddy app new NAME [--description D] [--id N] | list | show NAME | delete NAME "
            "[--force] | data-delete NAME [--channel C | --all] [--force] | channel-new APP CH | "
            "channel-delete APP CH  (--data DIR | --store URL)",
        .summary = "Manages apps (PredictionIO `pio app`).",
        .opts = app_opts,
        .takes_args = true,
    };
    app_conf_t c;
    char *pos[argc + 1];
    int npos = 0;
    memset(&c, 0, sizeof c);
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    const char *sub = npos ? pos[0] : "";
    int want = !strcmp(sub, "list")                                      ? 1
               : !strcmp(sub, "channel-new") || !strcmp(sub, "channel-delete") ? 3
                                                                         : 2;
    if (!*sub || npos != want) {
        fprintf(stderr, "eddy app: wrong arguments\nusage: %s\n", cmd.usage);
        rc = 2;
        goto out;
    }
    store_t *st = NULL;
    if ((rc = open_store("app", &c, &st)))
        goto out;
    if (!strcmp(sub, "new"))
        rc = app_new(st, &c, pos[1]);
    else if (!strcmp(sub, "list"))
        rc = app_list(st);
    else if (!strcmp(sub, "show"))
        rc = app_show(st, pos[1]);
    else if (!strcmp(sub, "delete"))
        rc = app_delete(st, &c, pos[1]);
    else if (!strcmp(sub, "data-delete"))
        rc = app_data_delete(st, &c, pos[1]);
    else if (!strcmp(sub, "channel-new"))
        rc = channel_new(st, pos[1], pos[2]);
    else if (!strcmp(sub, "channel-delete"))
        rc = channel_delete(st, &c, pos[1], pos[2]);
    else {
        fprintf(stderr, "eddy app: unknown subcommand '%s'\nusage: %s\n", sub, cmd.usage);
        rc = 2;
    }
    store_close(st);
out:
    core_conf_free(app_opts, &c);
    return rc;
}

int cmd_accesskey(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy accesskey",
        .usage = "eddy accesskey new APP [EVENT...] [--event E]... [--key K] | "
                 "list [APP] | delete KEY  (--data DIR | --store URL)",
        .summary = "Manages access keys (PredictionIO `pio accesskey`); events listed limit the "
                   "key to those event names.",
        .opts = key_opts,
        .takes_args = true,
    };
    app_conf_t c;
    char *pos[argc + 1];
    int npos = 0;
    memset(&c, 0, sizeof c);
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    const char *sub = npos ? pos[0] : "";
    bool ok = (!strcmp(sub, "new") && npos >= 2) || (!strcmp(sub, "list") && npos <= 2) ||
              (!strcmp(sub, "delete") && npos == 2);
    if (!ok) {
        fprintf(stderr, "eddy accesskey: wrong arguments\nusage: %s\n", cmd.usage);
        rc = 2;
        goto out;
    }
    store_t *st = NULL;
    if ((rc = open_store("accesskey", &c, &st)))
        goto out;
    store_app_t app;
    if (!strcmp(sub, "new")) {
        if (store_app_get(st, pos[1], &app) != 0) {
            fprintf(stderr, "eddy accesskey new: app %s does not exist\n", pos[1]);
            rc = 1;
        } else {
            /* events: positional (pio form) and --event (repeatable) */
            int nev = 0;
            const char *evs[npos + c.events.n + 1];
            for (int i = 2; i < npos; i++)
                evs[nev++] = pos[i];
            for (int i = 0; i < c.events.n; i++)
                evs[nev++] = c.events.v[i];
            char key[STORE_ACCESSKEY_MAX + 1], err[512];
            rc = store_accesskey_new(st, app.id, c.key, evs, nev, key, err, sizeof err);
            if (rc) {
                fprintf(stderr, "eddy accesskey new: %s\n", err[0] ? err : core_strerror(rc));
                rc = 1;
            } else {
                printf("Created new access key: %s\n", key);
            }
        }
    } else if (!strcmp(sub, "list")) {
        int32_t id = -1;
        if (npos == 2) {
            if (store_app_get(st, pos[1], &app) != 0) {
                fprintf(stderr, "eddy accesskey list: app %s does not exist\n", pos[1]);
                rc = 1;
                goto close;
            }
            id = app.id;
        }
        store_accesskey_t *keys = NULL;
        size_t n = 0;
        if ((rc = store_accesskey_list(st, id, &keys, &n))) {
            fprintf(stderr, "eddy accesskey list: %s\n", core_strerror(rc));
            rc = 1;
            goto close;
        }
        printf("%64s | %6s | %s\n", "Access Key(s)", "App ID", "Allowed Event(s)");
        for (size_t i = 0; i < n; i++) {
            printf("%64s | %6d | ", keys[i].key, keys[i].app);
            if (keys[i].nevents == 0)
                printf("(all)");
            for (int e = 0; e < keys[i].nevents; e++)
                printf("%s%s", e ? ", " : "", keys[i].events[e]);
            printf("\n");
        }
        printf("Finished listing %zu access key(s).\n", n);
        store_accesskey_list_free(keys, n);
    } else {
        rc = store_accesskey_delete(st, pos[1]);
        if (rc) {
            fprintf(stderr, "eddy accesskey delete: %s\n",
                    rc == CORE_ERR_NOT_FOUND ? "no such access key" : core_strerror(rc));
            rc = 1;
        } else {
            printf("Deleted access key %s.\n", pos[1]);
        }
    }
close:
    store_close(st);
out:
    core_conf_free(key_opts, &c);
    return rc;
}

int cmd_channel(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy channel",
        .usage = "eddy channel new APP NAME | list APP | delete APP NAME [--force]  (--data DIR | "
                 "--store URL)",
        .summary = "Manages an app's named channels (each a separate event store; names "
                   "^[a-zA-Z0-9-]{1,16}$).",
        .opts = ch_opts,
        .takes_args = true,
    };
    app_conf_t c;
    char *pos[argc + 1];
    int npos = 0;
    memset(&c, 0, sizeof c);
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    const char *sub = npos ? pos[0] : "";
    bool ok = ((!strcmp(sub, "new") || !strcmp(sub, "delete")) && npos == 3) ||
              (!strcmp(sub, "list") && npos == 2);
    if (!ok) {
        fprintf(stderr, "eddy channel: wrong arguments\nusage: %s\n", cmd.usage);
        rc = 2;
        goto out;
    }
    store_t *st = NULL;
    if ((rc = open_store("channel", &c, &st)))
        goto out;
    if (!strcmp(sub, "new"))
        rc = channel_new(st, pos[1], pos[2]);
    else if (!strcmp(sub, "list"))
        rc = channel_list(st, pos[1]);
    else
        rc = channel_delete(st, &c, pos[1], pos[2]);
    store_close(st);
out:
    core_conf_free(ch_opts, &c);
    return rc;
}
