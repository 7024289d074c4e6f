/* pgtest.c - conninfo and admin helpers for the unit tests that need PostgreSQL. */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* Append key='value' (quoted as libpq wants) to buf. */
static void pgtest_conninfo_add(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, len - n, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, len - n, "'");
}

char *pgtest_conninfo_with_db(const char *base, const char *db)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (!opts) {
        fprintf(stderr, "PAGOFLEX_PG is not a valid conninfo: %s", err ? err : "?\n");
        PQfreemem(err);
        return NULL;
    }
    char *buf = calloc(1, 4096);
    for (PQconninfoOption *o = opts; buf && o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            pgtest_conninfo_add(buf, 4096, o->keyword, o->val);
    if (buf)
        pgtest_conninfo_add(buf, 4096, "dbname", db);
    PQconninfoFree(opts);
    return buf;
}

static void pgtest_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

bool pgtest_admin_exec(const char *admin, const char *sql)
{
    PGconn *c = PQconnectdb(admin);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PQsetNoticeProcessor(c, pgtest_quiet, NULL);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "cannot connect to PAGOFLEX_PG: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}
