/*
 * metrics_http.h - the /metrics endpoint of a node or a mount: an HTTP
 * server (libmicrohttpd, on a thread of its own) that answers GET
 * /metrics with what a collect function writes, in Prometheus's text
 * format. It is off unless an address is given.
 */
#ifndef SHARDFS_COMMON_METRICS_HTTP_H
#define SHARDFS_COMMON_METRICS_HTTP_H

#include <glib.h>

struct metrics_server;

/* Appends the exposition text; called on the server's thread, one scrape
 * at a time. */
typedef void (*metrics_collect_fn)(GString *out, void *arg);

/*
 * Listens on addr ("HOST:PORT" with an IPv4 or IPv6 literal, "[v6]:PORT",
 * port 0: any free one). 0, or -EINVAL (with *err: not an address) or
 * -EADDRINUSE and the like (with *err: cannot listen).
 */
int metrics_server_start(const char *addr, metrics_collect_fn collect, void *arg,
			 struct metrics_server **out, GError **err);
/* Whether addr is an address metrics_server_start takes; -EINVAL with
 * *err if not. */
int metrics_addr_check(const char *addr, GError **err);
unsigned metrics_server_port(const struct metrics_server *s);
/* Stops listening and waits for a scrape in progress; NULL is ignored. */
void metrics_server_stop(struct metrics_server *s);

#endif
