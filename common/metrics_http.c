/*
 * metrics_http.c - the /metrics endpoint with libmicrohttpd
 * (metrics_http.h).
 *
 * One scrape at a time (MHD_USE_INTERNAL_POLLING_THREAD, no thread per
 * connection): a scrape is a few kilobytes written from counters, and
 * collect functions then need no locking against each other.
 */
#define G_LOG_DOMAIN "shardfs"

#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct metrics_server {
	struct MHD_Daemon *d;
	metrics_collect_fn collect;
	void *arg;
	unsigned port;
};

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, GString *body,
			     const char *type)
{
	size_t len = body->len;
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
		len, g_string_free(body, FALSE), g_free);
	enum MHD_Result rc;

	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct metrics_server *s = cls;
	GString *body = g_string_new(NULL);

	(void)version;
	(void)upload;
	if (*upload_size) { /* no request of ours has a body */
		*upload_size = 0;
		g_string_free(body, TRUE);
		return MHD_YES;
	}
	(void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		g_string_assign(body, "only GET\n");
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, body, "text/plain");
	}
	if (!strcmp(url, "/metrics")) {
		s->collect(body, s->arg);
		return reply(conn, MHD_HTTP_OK, body, CONTENT_TYPE);
	}
	if (!strcmp(url, "/")) {
		g_string_assign(body, "<html><body><a href=\"/metrics\">metrics</a></body></html>\n");
		return reply(conn, MHD_HTTP_OK, body, "text/html");
	}
	g_string_assign(body, "not found: the metrics are at /metrics\n");
	return reply(conn, MHD_HTTP_NOT_FOUND, body, "text/plain");
}

/* "HOST:PORT" or "[V6]:PORT" with an address literal, into sa. */
static gboolean parse_addr(const char *text, struct sockaddr_storage *sa)
{
	const char *colon = strrchr(text, ':');
	char *host, *end;
	unsigned long port;
	gboolean ok;

	if (!colon || colon == text || !g_ascii_isdigit(colon[1]))
		return FALSE;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535)
		return FALSE;
	host = g_strndup(text, (gsize)(colon - text));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;

		host[strlen(host) - 1] = '\0';
		*a6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
		ok = inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)sa;

		*a4 = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		ok = inet_pton(AF_INET, host, &a4->sin_addr) == 1;
	}
	g_free(host);
	return ok;
}

int metrics_addr_check(const char *addr, GError **err)
{
	struct sockaddr_storage sa = {0};

	if (parse_addr(addr, &sa))
		return 0;
	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
		    "metrics address %s: not HOST:PORT with an IP address", addr);
	return -EINVAL;
}

int metrics_server_start(const char *addr, metrics_collect_fn collect, void *arg,
			 struct metrics_server **out, GError **err)
{
	struct sockaddr_storage sa = {0};
	struct metrics_server *s;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (metrics_addr_check(addr, err) < 0)
		return -EINVAL;
	parse_addr(addr, &sa);
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s = g_new0(struct metrics_server, 1);
	s->collect = collect;
	s->arg = arg;
	errno = 0;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!s->d) {
		int e = errno ? errno : EADDRINUSE;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "cannot serve metrics on %s: %s",
			    addr, g_strerror(e));
		g_free(s);
		return -e;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);

	s->port = info ? info->port : 0;
	*out = s;
	return 0;
}

unsigned metrics_server_port(const struct metrics_server *s)
{
	return s->port;
}

void metrics_server_stop(struct metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	g_free(s);
}
