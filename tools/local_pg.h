/*
 * local_pg.h - the PostgreSQL server of a local cluster (`shardfs up
 * --meta postgres`): Debian's initdb/pg_ctl, a data directory in DIR/pg,
 * run as an unprivileged system user (initdb and postgres refuse root).
 *
 * It listens on a unix socket in DIR/pg (a directory only that user and
 * root can enter, where logins are trusted) and on a TCP port of the
 * cluster's address for other hosts, where only TLS with a
 * scram-sha-256 password is accepted; the server's certificate is signed
 * by the cluster's CA, the password is in DIR/pg/password.
 */
#ifndef SHARDFS_TOOLS_LOCAL_PG_H
#define SHARDFS_TOOLS_LOCAL_PG_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

struct local_pg {
	char *dir;    /* DIR/pg */
	char *data;   /* DIR/pg/data */
	char *bindir; /* of initdb, pg_ctl, createdb */
	char *user;   /* the server's system user */
	uid_t uid;
	gid_t gid;
	uint16_t port; /* TCP and the socket's name; 0 until read or chosen */
	char *url;     /* the unix-socket URL of the cluster's database */
};

/* Paths and the server's user for the cluster in dir; FALSE (said on
 * stderr) without a PostgreSQL server installed. */
gboolean local_pg_init(struct local_pg *pg, const char *dir);
void local_pg_fini(struct local_pg *pg);
/* Whether the cluster in dir has a server's data in DIR/pg. */
gboolean local_pg_exists(const char *dir);
/* initdb, settings for host, start, the database "shardfs"; -1 (said). */
int local_pg_create(struct local_pg *pg, const char *host);
/* TLS from the cluster's CA, once it exists (a certificate for host). */
int local_pg_tls(struct local_pg *pg, const char *ca, const char *ca_key, const char *host);
/* Starts the server unless it runs; 1 if it was running, 0, or -1. */
int local_pg_start(struct local_pg *pg);
/* pg_ctl stop -m fast; 1 if it was not running, 0, or -1. */
int local_pg_stop(struct local_pg *pg);

#endif
