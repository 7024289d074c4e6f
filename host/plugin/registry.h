/* registry.h - loading connector plugins from a directory with dlopen.
 *
 * Each *.so in the plugin directory is copied to a private, content-named
 * path (<private_dir>/<name>-<sha256 prefix>.so) and opened from there with
 * dlopen(RTLD_NOW | RTLD_LOCAL), so a file overwritten in place cannot crash
 * a running process. The descriptor returned by pagoflex_connector_v1() is
 * checked field by field; a rejection is logged as
 *   plugin rejected: file=<path> field=<field> expected=<...> found=<...>: <how to fix>
 * and every other plugin still loads.
 *
 * Connector accounts (issue 13): a plugin serves one or more accounts, each
 * with its own credentials file, its own init and its own state:
 *   <credentials_dir>/<name>.cfg.enc            account "default"
 *   <credentials_dir>/<name>/<account>.cfg.enc  account <account>, [a-z0-9_-]{1,32}
 * Every loaded account is one registry_plugin (they share the dlopen'd
 * object and descriptor, nothing else), so whoever holds an account's
 * registry_plugin can only call the plugin with that account's state,
 * certificate, token and key set. An account whose file fails (cannot be
 * decrypted, lacks a required name, init fails) is refused alone:
 *   connector account rejected: plugin=<name> account=<account> file=<path> field=... : <fix>
 * and the plugin's other accounts serve; a plugin none of whose accounts
 * loads is rejected as a whole, with its first account's reason.
 *
 * Every dlopen, of a fresh copy or of a recorded last good version, is
 * preceded by the same checks on the copy itself: its content still has
 * the recorded SHA-256, the copy and the private directory pass the owner
 * and mode checks, and, when signatures are required, the .sig kept next to
 * the copy verifies under the trusted keys of *this* load. A refused last
 * good version is logged as
 *   last good version refused: file=<path> copy=<copy> field=<field> ...
 */
#ifndef PAGOFLEX_REGISTRY_H
#define PAGOFLEX_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <pagoflex/connector.h>

#include "creds.h"

#include "plugin_trust.h"
#include "secrets.h"
#include "services.h"
#include "tlscreds.h"
#include "banktoken.h"
#include "keyset.h"

typedef struct registry_plugin {
    char *name;         /* file name without ".so": credentials are <name>.cfg.enc */
    char *account;      /* the connector account this instance serves: "default"
                           (<name>.cfg.enc) or the <account> of <name>/<account>.cfg.enc */
    char *file;         /* path in the plugin directory */
    char *private_path; /* the copy that was dlopen'd */
    char sha256[65];    /* of the file's content */
    void *handle;       /* dlopen handle */
    const pagoflex_connector *desc; /* inside the loaded object */
    services_plugin services;       /* this plugin's host-services table */
    pagoflex_arena *init_arena;     /* host->init_arena's arena (or NULL): freed
                                       after fini */
    void *state;                    /* from desc->init */
    time_t loaded_at;
    char *last_error; /* when this is the last good version because a newer
                         file was rejected: that rejection line; else NULL */
    _Atomic int *busy; /* if set: calls into this plugin in progress (the
                          worker's crash board; the caller counts) */
    uint32_t flows;    /* PAGOFLEX_FLOW_BIT of every flow it serves: a 1.2
                          plugin's declared flows; a 1.0/1.1 plugin's
                          through the host's adapter (AUTHORIZE with
                          automatic capture, PAYMENT_SYNC if it has sync) */
    tlscreds *tls;     /* the client certificate of a 1.2 plugin naming
                          tls_* credentials (read and checked at load,
                          wiped after fini), or NULL */
    banktoken *token;  /* a plugin with token_request/token_response: its
                          account's access token (bankcall.c), else NULL */
    keyset *keys;      /* a plugin with keys_request: its account's webhook
                          key set (bankcall.c), else NULL */
    int private_fd;    /* private_path, open with a shared flock() for as
                          long as it is loaded: registry_clean_private
                          leaves a copy alone while anyone holds one */
} registry_plugin;

/* A file of the plugin directory that is not served, and why. */
typedef struct registry_rejection {
    char *file;
    char *reason; /* the "plugin rejected: ..." line */
} registry_rejection;

typedef struct registry_options {
    const char *plugin_dir;      /* may be NULL if only registry_load_file is used */
    const char *credentials_dir; /* <credentials_dir>/<name>.cfg.enc */
    const char *private_dir;     /* where private copies go (created 0700, with
                                    parents; refused if others may write to it).
                                    may be shared by processes: a copy removed
                                    by another process's registry_free while
                                    this one loads is copied again */
    const secrets_key *master_key; /* borrowed, used only while loading (it
                                      may be wiped after the last load); may
                                      be NULL if no plugin has a credentials
                                      file */
    /* Keep private copies on free and record each successful load as the
     * plugin's last good version (<private_dir>/last-good/<name>); a later
     * registry_load_dir falls back to it when the file fails to load, if
     * the copy passes the checks above (so a signer removed from
     * trusted_keys stops its plugins on the next load, fallback included).
     * Used by the daemon, whose worker generations share private_dir. */
    bool keep_last_good;
    /* Plugin names (file names without .so) not to load; NULL-terminated
     * or NULL. The daemon passes the quarantined ones. */
    const char *const *skip;
    const secrets_key *previous_master_key; /* borrowed like master_key; may be
                                               NULL. During a key rotation a
                                               credentials file is decrypted
                                               with whichever of the two keys
                                               its header names */
    const plugin_trust *trust; /* signature policy (borrowed, may be NULL:
                                  none). Owner and mode checks of the plugin
                                  directory and files apply always */
    /* Non-secret plugin settings (host->setting in init), borrowed: they
     * must stay valid while plugins are loaded. NULL/0 for none. */
    const creds_setting *settings;
    size_t settings_count;
} registry_options;

typedef struct registry registry;

/* Empty registry; the option strings are copied, master_key is borrowed
 * and must stay valid while plugins are loaded. NULL on OOM or when
 * credentials_dir or private_dir is NULL. A loaded registry is read-only: lookups may run from
 * any number of threads; loading and freeing may not run concurrently with
 * anything else. */
registry *registry_new(const registry_options *opts);

/* Load every *.so of opts->plugin_dir in name order (dotfiles skipped).
 * A plugin directory owned by another user or writable by group or others
 * is refused as a whole (-1, nothing loaded, the fix in err).
 * A rejected file is logged and never stops the others; on a duplicate key
 * or webhook path the file first in name order wins. With keep_last_good a
 * rejected file's last good version serves instead, if it passes the same
 * checks; if it does not, the rejection's reason also says why it did not.
 * Returns how many were loaded, or -1 if the directory cannot be read
 * (reason in err). */
int registry_load_dir(registry *r, char *err, size_t errlen);

/* Load and check one file: owner, mode and (when required) signature of
 * the file and its directory, private copy, dlopen, descriptor checks,
 * credentials, init. 0 on success (the plugin is owned by the registry);
 * -1 with the rejection line in err (also logged), and nothing of the
 * plugin is left loaded or on disk. */
int registry_load_file(registry *r, const char *path, char *err, size_t errlen);

/* The plugin with connector key `key` / webhook path `path`, or NULL: its
 * first loaded account (for what every account shares: descriptor, flows,
 * currencies). Owned by the registry, valid until registry_free. Anything
 * that calls into the plugin for a payment uses registry_find_account. */
const registry_plugin *registry_find_key(const registry *r, const char *key);
const registry_plugin *registry_find_webhook(const registry *r, const char *path);

/* Account `account` of the plugin with connector key `key` / webhook path
 * `path`, or NULL when that plugin or that account is not loaded. Owned by
 * the registry, valid until registry_free. */
const registry_plugin *registry_find_account(const registry *r, const char *key, const char *account);
const registry_plugin *registry_find_webhook_account(const registry *r, const char *path,
                                                     const char *account);

/* An account refused while its plugin loaded (its other accounts serve). */
typedef struct registry_account_rejection {
    char *plugin; /* plugin name */
    char *account;
    char *reason; /* the "connector account rejected: ..." line (never a secret) */
} registry_account_rejection;

/* The accounts refused in this load, in load order. */
size_t registry_account_rejected_count(const registry *r);
const registry_account_rejection *registry_account_rejected_at(const registry *r, size_t i);

/* True if `account` is a valid account name, [a-z0-9_-]{1,32}. */
bool registry_account_name_valid(const char *account);

/* Files of the plugin directory that are not served (no last good version
 * either), in load order. */
size_t registry_rejected_count(const registry *r);
const registry_rejection *registry_rejected_at(const registry *r, size_t i);

/* Number of loaded plugin accounts and the i-th one (in load order; the
 * accounts of one plugin are adjacent, "default" first, then by name). */
size_t registry_count(const registry *r);
const registry_plugin *registry_at(const registry *r, size_t i);

/* Remove the private copies nothing can use any more from a shared
 * private_dir (keep_last_good registries only; else a no-op): a
 * <name>-<hash>.so that is not loaded by `r`, is not the last good version
 * recorded for <name>, and on which no process holds its load lock (every
 * process that loaded it holds one until it unloads it, so copies of old
 * generations still draining stay); and temporary files of copies left
 * more than an hour ago. Safe while other processes load from the same
 * folder and while threads use `r`. Returns how many files it removed, or
 * -1 (errno set) when the folder cannot be read. */
int registry_clean_private(const registry *r);

/* The flows descriptor `d` is served with (see registry_plugin.flows). */
uint32_t registry_flows_of(const pagoflex_connector *d);

/* True if plugin `p` serves `flow`. */
bool registry_has_flow(const registry_plugin *p, pagoflex_flow flow);

/* True if `p` is a 1.2 plugin called through flow_request/flow_response
 * (false: through the adapter over its 1.0/1.1 entry points). */
bool registry_uses_flows(const registry_plugin *p);

/* True if `p` has the 1.2 webhook_verify/webhook_parse pair. */
bool registry_uses_webhook12(const registry_plugin *p);

/* "authorize", "capture", "void", "refund", "payment_sync", "refund_sync"
 * (static strings), or "unknown". */
const char *registry_flow_name(pagoflex_flow flow);

/* Call each plugin's fini, dlclose and remove the private copies. Only when
 * no thread can still run plugin code. NULL is a no-op. */
void registry_free(registry *r);

#endif
