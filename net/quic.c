/*
 * quic.c - event loop, UDP sockets and connections over ngtcp2 0.12.
 *
 * Loop: epoll over the sockets and one eventfd for work posted by other
 * threads, waiting with epoll_pwait2 until the earliest deadline (a
 * nanosecond timeout, so ngtcp2's sub-millisecond pacing deadlines hold; a
 * timerfd where epoll_pwait2 is missing). Each turn: run posted work, read
 * every socket dry (recvmmsg, GRO segments split), handle expired
 * deadlines, then write every connection marked dirty, in GSO batches, and
 * wait again until the earliest deadline.
 *
 * Routing: a client connection owns a connected UDP socket. A listener's
 * socket serves all its connections; datagrams are routed by destination
 * connection ID (every ID a connection issued, plus the client's original
 * one), never by address.
 *
 * Closing: a failing or closed connection tells the application at once
 * (every stream, then the connection), sends CONNECTION_CLOSE once, and is
 * deleted after three PTOs so that late packets of the peer are absorbed.
 *
 * All state here belongs to the loop thread; quic_loop_post() is the only
 * way in from other threads.
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "common/error.h"
#include "quic.h"
#include "quic_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SCID_LEN 16
#define RX_SLOTS 16
#define RX_SLOT_SIZE 65536
#define TX_BUF_SIZE 65536
#define MAX_GSO_SEGMENTS 64
#define SOCK_BUF (8 << 20)
#define STREAM_IOV 16

enum ev_kind { EV_WAKE, EV_TIMER, EV_SOCK };

struct ev {
	enum ev_kind kind;
	void *ptr;
};

struct chunk {
	const uint8_t *data;
	size_t len;
	uint64_t start; /* stream offset of data[0] */
	void (*free_fn)(void *);
	void *free_arg;
};

struct quic_stream {
	int64_t id;
	struct quic_conn *c;
	GQueue chunks;	     /* unacknowledged chunks, in order */
	uint64_t queued_end; /* stream offset after the last queued byte */
	uint64_t sent;	     /* bytes handed to ngtcp2 */
	bool fin_queued, fin_sent, in_sendq, closed;
	void *user;
};

struct quic_sock {
	struct ev ev;
	int fd;
	bool gso;
	struct quic_loop *loop;
	struct quic_listener *ls; /* a listener's socket */
	struct quic_conn *conn;	  /* a client connection's socket */
	struct sockaddr_storage local;
	socklen_t locallen;
	/* A batch the kernel had no room for (EAGAIN), sent on EPOLLOUT. */
	uint8_t *pending;
	size_t pending_len, pending_seg;
	struct sockaddr_storage pending_to;
	socklen_t pending_tolen;
};

struct quic_conn {
	struct quic_loop *loop;
	struct quic_sock *sock;
	struct quic_listener *ls;
	ngtcp2_conn *conn;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref ref;
	ngtcp2_connection_close_error ccerr;
	struct sockaddr_storage remote;
	socklen_t remotelen;
	const struct quic_conn_ops *ops;
	void *user;
	GHashTable *streams; /* int64_t id -> struct quic_stream */
	GQueue sendq;	     /* streams with bytes or a FIN to send */
	ngtcp2_cid odcid;    /* servers: the client's first destination CID */
	bool server, ready, closing, reported, dirty;
	gint64 delete_at_us;
};

struct quic_listener {
	struct quic_loop *loop;
	struct quic_sock *sock;
	struct net_tls *tls;
	struct quic_settings set;
	const struct quic_conn_ops *ops;
	void *user;
	GHashTable *cids; /* struct cid_key -> struct quic_conn */
	uint8_t reset_secret[32];
	gint64 refusal_logged_us;    /* the last refused peer logged */
	unsigned refusals_unlogged; /* refused since */
};

struct post {
	void (*fn)(void *);
	void *arg;
};

struct app_timer {
	gint64 deadline_us;
	void (*fn)(void *);
	void *arg;
};

struct quic_loop {
	int epfd, timerfd, wakefd;
	struct ev wake_ev, timer_ev;
	GThread *thread;
	bool stop;
	GMutex lock;
	GQueue posts; /* struct post, lock */
	GList *conns; /* struct quic_conn */
	GList *timers; /* struct app_timer, sorted by deadline */
	GSList *dead_socks; /* closed this turn, freed at its end */
	bool use_timerfd;   /* no epoll_pwait2: deadlines go through timerfd */
	uint64_t armed_ns;  /* the timerfd's deadline, UINT64_MAX: disarmed */
	uint8_t *rx;   /* RX_SLOTS * RX_SLOT_SIZE */
	uint8_t tx[TX_BUF_SIZE];
};

static void conn_report_closed(struct quic_conn *c, int error);
static void conn_fail(struct quic_conn *c, int error);
static void conn_delete(struct quic_conn *c);
static void conn_write(struct quic_conn *c);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

gint64 quic_loop_now_us(void)
{
	return (gint64)(now_ns() / 1000);
}

void quic_settings_default(struct quic_settings *s)
{
	s->conn_window = 32u << 20;
	s->stream_window = 8u << 20;
	s->max_window = 128u << 20;
	s->max_stream_window = 32u << 20;
	s->max_streams = 1024;
	s->idle_timeout_ms = 30000;
	s->keepalive_ms = 0;
}

/* ---- sockets ---- */

static void sock_tune(int fd)
{
	int size = SOCK_BUF, one = 1;

	/* The default 208 KiB drops bursts; root may exceed rmem_max. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	char portstr[8];

	g_snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -EHOSTUNREACH;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static struct quic_sock *sock_open(struct quic_loop *l, const struct sockaddr_storage *addr,
				   socklen_t len, bool connect_to, int *err)
{
	struct quic_sock *s = g_new0(struct quic_sock, 1);
	struct epoll_event ee = {.events = EPOLLIN};

	s->fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail;
	sock_tune(s->fd);
	if ((connect_to ? connect(s->fd, (const struct sockaddr *)addr, len)
			: bind(s->fd, (const struct sockaddr *)addr, len)) < 0)
		goto fail;
	s->locallen = sizeof(s->local);
	getsockname(s->fd, (struct sockaddr *)&s->local, &s->locallen);
	s->gso = true;
	s->loop = l;
	s->ev = (struct ev){EV_SOCK, s};
	ee.data.ptr = &s->ev;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->fd, &ee) < 0)
		goto fail;
	return s;
fail:
	*err = -errno;
	if (s->fd >= 0)
		close(s->fd);
	g_free(s);
	return NULL;
}

/* The memory is freed at the end of the loop turn: an event for this
 * socket may still be in the batch epoll_wait returned. */
static void sock_close(struct quic_sock *s)
{
	if (!s)
		return;
	epoll_ctl(s->loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
	g_free(s->pending);
	s->pending = NULL;
	s->loop->dead_socks = g_slist_prepend(s->loop->dead_socks, s);
}

static ssize_t send_one(struct quic_sock *s, const uint8_t *buf, size_t len, size_t seg,
			const struct sockaddr_storage *to, socklen_t tolen)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {(void *)buf, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	if (!s->conn) { /* a listener's socket is not connected */
		m.msg_name = (void *)to;
		m.msg_namelen = tolen;
	}
	if (len > seg) {
		uint16_t g = (uint16_t)seg;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(cm), &g, sizeof(g));
	}
	return sendmsg(s->fd, &m, 0);
}

/* Sends a batch of equal-size packets (the last may be shorter). */
static void sock_send(struct quic_sock *s, const uint8_t *buf, size_t len, size_t seg,
		      const struct sockaddr_storage *to, socklen_t tolen)
{
	size_t off = 0;

	if (s->pending)
		return; /* the socket is full: QUIC will retransmit what is lost */
	if (s->gso || len <= seg) {
		ssize_t n = send_one(s, buf, len, s->gso ? seg : len, to, tolen);

		if (n >= 0)
			return;
		if (errno == EIO && len > seg) {
			g_message("UDP GSO refused by the kernel: sending one packet per call");
			s->gso = false;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			goto defer;
		} else {
			return; /* unreachable peer etc.: loss recovery or idle timeout acts */
		}
	}
	for (; off < len; off += seg) {
		size_t n = MIN(seg, len - off);

		if (send_one(s, buf + off, n, n, to, tolen) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				goto defer;
			return;
		}
	}
	return;
defer:
	s->pending = g_memdup2(buf + off, len - off);
	s->pending_len = len - off;
	s->pending_seg = seg;
	s->pending_to = *to;
	s->pending_tolen = tolen;
	struct epoll_event ee = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &s->ev};

	epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ee);
}

static void sock_writable(struct quic_sock *s)
{
	uint8_t *buf = s->pending;
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &s->ev};

	s->pending = NULL;
	epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ee);
	if (buf)
		sock_send(s, buf, s->pending_len, s->pending_seg, &s->pending_to, s->pending_tolen);
	g_free(buf);
	for (GList *it = s->loop->conns; it; it = it->next)
		((struct quic_conn *)it->data)->dirty |= ((struct quic_conn *)it->data)->sock == s;
}

/* ---- streams ---- */

static struct quic_stream *stream_new(struct quic_conn *c, int64_t id)
{
	struct quic_stream *s = g_new0(struct quic_stream, 1);

	s->id = id;
	s->c = c;
	g_hash_table_insert(c->streams, &s->id, s);
	ngtcp2_conn_set_stream_user_data(c->conn, id, s);
	return s;
}

static void chunk_free(struct chunk *ch)
{
	if (ch->free_fn)
		ch->free_fn(ch->free_arg);
	g_free(ch);
}

static void stream_free(gpointer p)
{
	struct quic_stream *s = p;
	struct chunk *ch;

	while ((ch = g_queue_pop_head(&s->chunks)))
		chunk_free(ch);
	g_free(s);
}

/* Tells the application and forgets the stream. */
static void stream_closed(struct quic_conn *c, struct quic_stream *s, bool reset)
{
	struct chunk *ch;

	if (s->closed)
		return;
	s->closed = true;
	if (s->in_sendq)
		g_queue_remove(&c->sendq, s);
	/* Buffers go back before the application hears of the close, so that
	 * it may free what they pointed into. */
	while ((ch = g_queue_pop_head(&s->chunks)))
		chunk_free(ch);
	if (!c->reported && c->ops->on_stream_close)
		c->ops->on_stream_close(c, s, reset);
	g_hash_table_remove(c->streams, &s->id);
}

int quic_stream_open(struct quic_conn *c, struct quic_stream **out)
{
	int64_t id;
	int rc;

	if (c->closing || !c->ready)
		return -ENOTCONN;
	rc = ngtcp2_conn_open_bidi_stream(c->conn, &id, NULL);
	if (rc == NGTCP2_ERR_STREAM_ID_BLOCKED)
		return -EAGAIN;
	if (rc != 0)
		return -EIO;
	*out = stream_new(c, id);
	return 0;
}

void *quic_stream_user(const struct quic_stream *s)
{
	return s->user;
}

void quic_stream_set_user(struct quic_stream *s, void *user)
{
	s->user = user;
}

void quic_stream_send(struct quic_stream *s, const void *data, size_t len,
		      void (*free_fn)(void *), void *free_arg, bool fin)
{
	if (len > 0 || free_fn) {
		struct chunk *ch = g_new(struct chunk, 1);

		*ch = (struct chunk){data, len, s->queued_end, free_fn, free_arg};
		g_queue_push_tail(&s->chunks, ch);
		s->queued_end += len;
	}
	s->fin_queued |= fin;
	if (!s->in_sendq) {
		g_queue_push_tail(&s->c->sendq, s);
		s->in_sendq = true;
	}
	s->c->dirty = true;
}

void quic_stream_consume(struct quic_stream *s, size_t n)
{
	if (!s->c->closing && n)
		ngtcp2_conn_extend_max_stream_offset(s->c->conn, s->id, n);
	s->c->dirty = true;
}

void quic_conn_consume(struct quic_conn *c, size_t n)
{
	if (!c->closing && n)
		ngtcp2_conn_extend_max_offset(c->conn, n);
	c->dirty = true;
}

void quic_stream_stop_reading(struct quic_stream *s, uint64_t app_error)
{
	if (!s->c->closing)
		ngtcp2_conn_shutdown_stream_read(s->c->conn, s->id, app_error);
	s->c->dirty = true;
}

void quic_stream_reset(struct quic_stream *s, uint64_t app_error)
{
	struct quic_conn *c = s->c;

	if (!c->closing)
		ngtcp2_conn_shutdown_stream(c->conn, s->id, app_error);
	c->dirty = true;
}

/* ---- ngtcp2 callbacks ---- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct quic_conn *)ref->user_data)->conn;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

/* A connection ID as a routing key. Every datagram a listener receives is
 * routed by one lookup, so the key lives on the stack: building a GBytes
 * for it (allocate, hash byte by byte, free) was 2-3% of a node's CPU. */
struct cid_key {
	size_t len;
	uint8_t data[NGTCP2_MAX_CIDLEN];
};

/* false when len exceeds what QUIC v1 allows (such a packet is dropped). */
static bool cid_key_set(struct cid_key *k, const uint8_t *data, size_t len)
{
	if (len > NGTCP2_MAX_CIDLEN)
		return false;
	memset(k, 0, sizeof(*k));
	k->len = len;
	memcpy(k->data, data, len);
	return true;
}

static guint cid_key_hash(gconstpointer p)
{
	const struct cid_key *k = p;
	guint h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < k->len; i++)
		h = (h ^ k->data[i]) * 16777619u;
	return h;
}

static gboolean cid_key_equal(gconstpointer a, gconstpointer b)
{
	const struct cid_key *x = a, *y = b;

	return x->len == y->len && memcmp(x->data, y->data, x->len) == 0;
}

static void route_add(struct quic_listener *ls, const ngtcp2_cid *cid, struct quic_conn *c)
{
	struct cid_key *k = g_new(struct cid_key, 1);

	cid_key_set(k, cid->data, cid->datalen); /* ngtcp2_cid holds at most NGTCP2_MAX_CIDLEN */
	g_hash_table_insert(ls->cids, k, c);
}

/* Forgets the route of cid if it leads to c (NULL: whatever it leads to). */
static void route_remove(struct quic_listener *ls, const ngtcp2_cid *cid, struct quic_conn *c)
{
	struct cid_key k;

	cid_key_set(&k, cid->data, cid->datalen);
	if (!c || g_hash_table_lookup(ls->cids, &k) == c)
		g_hash_table_remove(ls->cids, &k);
}

static int new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	struct quic_conn *c = ud;

	(void)conn;
	gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen);
	cid->datalen = cidlen;
	if (!c->ls) {
		gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN);
		return 0;
	}
	if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ls->reset_secret,
							 sizeof(c->ls->reset_secret), cid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	route_add(c->ls, cid, c);
	return 0;
}

static int remove_cid_cb(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *ud)
{
	struct quic_conn *c = ud;
	(void)conn;
	if (c->ls)
		route_remove(c->ls, cid, NULL);
	return 0;
}

static int check_alpn(struct quic_conn *c)
{
	if (quic_tls_alpn_ok(c->tls))
		return 0;
	ngtcp2_connection_close_error_set_transport_error_tls_alert(&c->ccerr, 120, NULL, 0);
	return NGTCP2_ERR_CALLBACK_FAILURE;
}

static void mark_ready(struct quic_conn *c)
{
	c->ready = true;
	if (c->ops->on_ready)
		c->ops->on_ready(c);
}

static int handshake_completed_cb(ngtcp2_conn *conn, void *ud)
{
	struct quic_conn *c = ud;

	(void)conn;
	if (check_alpn(c) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (c->server) /* the client certificate was verified by now */
		mark_ready(c);
	return 0;
}

static int handshake_confirmed_cb(ngtcp2_conn *conn, void *ud)
{
	struct quic_conn *c = ud;

	(void)conn;
	/* A client knows the node accepted its certificate only now. */
	if (!c->server && !c->ready)
		mark_ready(c);
	return 0;
}

static int stream_open_cb(ngtcp2_conn *conn, int64_t id, void *ud)
{
	struct quic_conn *c = ud;
	struct quic_stream *s;

	(void)conn;
	if (!ngtcp2_is_bidi_stream(id)) /* the protocol has no unidirectional streams */
		return 0;
	s = stream_new(c, id);
	if (c->ops->on_stream_open)
		c->ops->on_stream_open(c, s);
	return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *conn, uint32_t flags, int64_t id, uint64_t offset,
			       const uint8_t *data, size_t len, void *ud, void *sud)
{
	struct quic_conn *c = ud;
	struct quic_stream *s = sud;

	(void)offset;
	if (!s || s->closed) {
		/* Not a stream of ours (unidirectional): drop, keep credit flowing. */
		ngtcp2_conn_extend_max_stream_offset(conn, id, len);
		ngtcp2_conn_extend_max_offset(conn, len);
		return 0;
	}
	c->ops->on_stream_data(c, s, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
	return 0;
}

static int acked_cb(ngtcp2_conn *conn, int64_t id, uint64_t offset, uint64_t len, void *ud,
		    void *sud)
{
	struct quic_stream *s = sud;
	struct chunk *ch;
	uint64_t acked = offset + len;

	(void)conn;
	(void)id;
	(void)ud;
	if (!s)
		return 0;
	/* Acks may arrive out of order; a chunk goes once all of it is acked,
	 * which ngtcp2 reports as a contiguous offset. */
	while ((ch = g_queue_peek_head(&s->chunks)) && ch->start + ch->len <= acked &&
	       ch->start + ch->len <= s->sent)
		chunk_free(g_queue_pop_head(&s->chunks));
	return 0;
}

static int stream_close_cb(ngtcp2_conn *conn, uint32_t flags, int64_t id, uint64_t app_error,
			   void *ud, void *sud)
{
	struct quic_conn *c = ud;
	struct quic_stream *s = sud;
	bool reset = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) &&
		     app_error != QUIC_APP_NO_ERROR;

	if (c->server && !ngtcp2_conn_is_local_stream(conn, id) && ngtcp2_is_bidi_stream(id))
		ngtcp2_conn_extend_max_streams_bidi(conn, 1);
	if (s)
		stream_closed(c, s, reset);
	return 0;
}

static int stream_reset_cb(ngtcp2_conn *conn, int64_t id, uint64_t final_size, uint64_t app_error,
			   void *ud, void *sud)
{
	(void)final_size;
	(void)ud;
	(void)sud;
	/* The peer abandoned its side: abandon ours, the stream then closes. */
	ngtcp2_conn_shutdown_stream(conn, id, app_error ? app_error : QUIC_APP_CANCELLED);
	return 0;
}

static int stop_sending_cb(ngtcp2_conn *conn, int64_t id, uint64_t app_error, void *ud, void *sud)
{
	(void)ud;
	(void)sud;
	/* Only our sending side: the peer's answer may still be on its way. */
	ngtcp2_conn_shutdown_stream_write(conn, id, app_error ? app_error : QUIC_APP_CANCELLED);
	return 0;
}

static int streams_available_cb(ngtcp2_conn *conn, uint64_t max, void *ud)
{
	struct quic_conn *c = ud;

	(void)conn;
	(void)max;
	if (c->ready && c->ops->on_streams_available)
		c->ops->on_streams_available(c);
	return 0;
}

static int stream_data_cb(ngtcp2_conn *conn, int64_t id, uint64_t max, void *ud, void *sud)
{
	struct quic_conn *c = ud;
	struct quic_stream *s = sud;

	(void)conn;
	(void)id;
	(void)max;
	if (s && !s->closed && !s->in_sendq && (s->sent < s->queued_end || (s->fin_queued && !s->fin_sent))) {
		g_queue_push_tail(&c->sendq, s);
		s->in_sendq = true;
	}
	c->dirty = true;
	return 0;
}

static void fill_callbacks(ngtcp2_callbacks *cb, bool server)
{
	memset(cb, 0, sizeof(*cb));
	if (server) {
		cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
	} else {
		cb->client_initial = ngtcp2_crypto_client_initial_cb;
		cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
		cb->handshake_confirmed = handshake_confirmed_cb;
		cb->extend_max_local_streams_bidi = streams_available_cb;
	}
	cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
	cb->encrypt = ngtcp2_crypto_encrypt_cb;
	cb->decrypt = ngtcp2_crypto_decrypt_cb;
	cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb->update_key = ngtcp2_crypto_update_key_cb;
	cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
	cb->rand = rand_cb;
	cb->get_new_connection_id = new_cid_cb;
	cb->remove_connection_id = remove_cid_cb;
	cb->handshake_completed = handshake_completed_cb;
	cb->stream_open = stream_open_cb;
	cb->recv_stream_data = recv_stream_data_cb;
	cb->acked_stream_data_offset = acked_cb;
	cb->stream_close = stream_close_cb;
	cb->stream_reset = stream_reset_cb;
	cb->stream_stop_sending = stop_sending_cb;
	cb->extend_max_stream_data = stream_data_cb;
}

static void fill_settings(const struct quic_settings *qs, ngtcp2_settings *s,
			  ngtcp2_transport_params *p)
{
	ngtcp2_settings_default(s);
	s->initial_ts = now_ns();
	s->max_window = qs->max_window;
	s->max_stream_window = qs->max_stream_window;
	ngtcp2_transport_params_default(p);
	p->initial_max_data = qs->conn_window;
	p->initial_max_stream_data_bidi_local = qs->stream_window;
	p->initial_max_stream_data_bidi_remote = qs->stream_window;
	p->initial_max_streams_bidi = qs->max_streams;
	p->max_idle_timeout = qs->idle_timeout_ms * NGTCP2_MILLISECONDS;
	p->disable_active_migration = 1;
}

/* ---- connections ---- */

static struct quic_conn *conn_alloc(struct quic_loop *l, const struct quic_conn_ops *ops, void *user)
{
	struct quic_conn *c = g_new0(struct quic_conn, 1);

	c->loop = l;
	c->ops = ops;
	c->user = user;
	c->streams = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, stream_free);
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	ngtcp2_connection_close_error_default(&c->ccerr);
	l->conns = g_list_prepend(l->conns, c);
	return c;
}

static ngtcp2_path conn_path(struct quic_conn *c)
{
	return (ngtcp2_path){{(struct sockaddr *)&c->sock->local, c->sock->locallen},
			     {(struct sockaddr *)&c->remote, c->remotelen},
			     NULL};
}

int quic_connect(struct quic_loop *l, const char *host, uint16_t port, struct net_tls *tls,
		 const struct quic_settings *set, const struct quic_conn_ops *ops, void *user,
		 struct quic_conn **out)
{
	struct quic_conn *c = conn_alloc(l, ops, user);
	ngtcp2_callbacks cb;
	ngtcp2_settings s;
	ngtcp2_transport_params p;
	ngtcp2_cid dcid, scid;
	int rc = resolve(host, port, &c->remote, &c->remotelen);

	if (rc < 0)
		goto fail;
	c->sock = sock_open(l, &c->remote, c->remotelen, true, &rc);
	if (!c->sock)
		goto fail;
	c->sock->conn = c;
	dcid.datalen = SCID_LEN;
	scid.datalen = SCID_LEN;
	gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, SCID_LEN);
	gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, SCID_LEN);
	fill_callbacks(&cb, false);
	fill_settings(set, &s, &p);
	p.initial_max_streams_bidi = 0; /* nodes never open streams to clients */
	ngtcp2_path path = conn_path(c);

	if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &p,
				   NULL, c) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = quic_tls_session_new(tls, false, host, &c->ref, &c->tls);
	if (rc < 0)
		goto fail;
	ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
	if (set->keepalive_ms)
		ngtcp2_conn_set_keep_alive_timeout(c->conn, set->keepalive_ms * NGTCP2_MILLISECONDS);
	c->dirty = true;
	*out = c;
	return 0;
fail:
	c->reported = true; /* the caller learns from the return value */
	conn_delete(c);
	return rc;
}

void *quic_conn_user(const struct quic_conn *c)
{
	return c->user;
}

bool quic_conn_is_ready(const struct quic_conn *c)
{
	return c->ready && !c->closing;
}

uint64_t quic_conn_rtt_us(const struct quic_conn *c)
{
	ngtcp2_conn_stat st;

	if (!c->conn)
		return 0;
	ngtcp2_conn_get_conn_stat(c->conn, &st);
	return st.smoothed_rtt / 1000;
}

static void unroute(struct quic_conn *c)
{
	size_t n;
	ngtcp2_cid *cids;

	if (!c->ls || !c->conn)
		return;
	n = ngtcp2_conn_get_num_scid(c->conn);
	cids = g_new(ngtcp2_cid, n);
	ngtcp2_conn_get_scid(c->conn, cids);
	for (size_t i = 0; i < n; i++)
		route_remove(c->ls, &cids[i], c);
	route_remove(c->ls, &c->odcid, c);
	g_free(cids);
}

static void conn_delete(struct quic_conn *c)
{
	conn_report_closed(c, 0);
	unroute(c);
	g_hash_table_destroy(c->streams);
	if (c->conn)
		ngtcp2_conn_del(c->conn);
	if (c->tls)
		gnutls_deinit(c->tls);
	if (!c->ls)
		sock_close(c->sock);
	c->loop->conns = g_list_remove(c->loop->conns, c);
	g_free(c);
}

/* Tells the application once: every stream, then the connection. */
static void conn_report_closed(struct quic_conn *c, int error)
{
	GList *streams;

	if (c->reported)
		return;
	streams = g_hash_table_get_values(c->streams);
	for (GList *it = streams; it; it = it->next)
		stream_closed(c, it->data, true);
	g_list_free(streams);
	c->reported = true;
	if (c->ops->on_conn_close)
		c->ops->on_conn_close(c, error);
}

static void conn_enter_closing(struct quic_conn *c, int error)
{
	c->closing = true;
	c->delete_at_us = quic_loop_now_us() + 3 * (gint64)(ngtcp2_conn_get_pto(c->conn) / 1000);
	conn_report_closed(c, error);
}

/* Sends CONNECTION_CLOSE (as c->ccerr says) and starts the closing period. */
static void conn_fail(struct quic_conn *c, int error)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n;

	if (c->closing)
		return;
	ngtcp2_path_storage_zero(&ps);
	n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, &pi, c->loop->tx, TX_BUF_SIZE,
					       &c->ccerr, now_ns());
	if (n > 0)
		sock_send(c->sock, c->loop->tx, (size_t)n, (size_t)n, &c->remote, c->remotelen);
	conn_enter_closing(c, error);
}

void quic_conn_close(struct quic_conn *c, uint64_t app_error)
{
	if (c->closing)
		return;
	ngtcp2_connection_close_error_set_application_error(&c->ccerr, app_error, NULL, 0);
	conn_fail(c, -ESHUTDOWN);
}

#define REFUSAL_LOG_INTERVAL_US (10 * G_USEC_PER_SEC)

/*
 * A peer whose certificate this side refused, in the log: a node names
 * each client it refuses (an operator otherwise sees nothing of a client
 * set up with another cluster's files), at most once per 10 s so that a
 * client retrying in a loop cannot fill the journal; a client says why
 * it refused a node.
 */
static void log_refused_peer(struct quic_conn *c)
{
	char host[INET6_ADDRSTRLEN] = "?", *why;
	const struct sockaddr *sa = (const struct sockaddr *)&c->remote;
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)sa)->sin6_addr
						  : (const void *)&((struct sockaddr_in *)sa)->sin_addr;
	unsigned port = ntohs(sa->sa_family == AF_INET6 ? ((struct sockaddr_in6 *)sa)->sin6_port
						       : ((struct sockaddr_in *)sa)->sin_port);
	gint64 now = quic_loop_now_us();

	if (c->ls && c->ls->refusal_logged_us &&
	    now - c->ls->refusal_logged_us < REFUSAL_LOG_INTERVAL_US) {
		c->ls->refusals_unlogged++;
		return;
	}
	inet_ntop(sa->sa_family, a, host, sizeof(host));
	why = quic_tls_failure(c->tls);
	if (c->ls) {
		g_warning("refused the TLS handshake of %s port %u: its certificate: %s%s", host, port,
			  why, c->ls->refusals_unlogged ? " (and other peers refused since the last"
							  " message)" : "");
		c->ls->refusal_logged_us = now;
		c->ls->refusals_unlogged = 0;
	} else {
		g_message("refused the certificate of %s port %u: %s", host, port, why);
	}
	g_free(why);
}

/* The error the application hears for a failed read. */
static int read_error(struct quic_conn *c, int rv)
{
	if (rv == NGTCP2_ERR_CRYPTO) {
		ngtcp2_connection_close_error_set_transport_error_tls_alert(
			&c->ccerr, ngtcp2_conn_get_tls_alert(c->conn), NULL, 0);
		log_refused_peer(c);
		return NET_ETLSVERIFY;
	}
	if (c->ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
	    c->ccerr.error_code == NGTCP2_NO_ERROR)
		ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
	return -EPROTO;
}

static int peer_close_error(struct quic_conn *c)
{
	ngtcp2_connection_close_error cc;

	ngtcp2_conn_get_connection_close_error(c->conn, &cc);
	if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION)
		return cc.error_code == QUIC_APP_NO_ERROR ? 0
		       : cc.error_code == QUIC_APP_SHUTDOWN ? -ESHUTDOWN : -ECONNRESET;
	if ((cc.error_code & ~(uint64_t)0xff) == NGTCP2_CRYPTO_ERROR) /* a TLS alert */
		return NET_ETLSREFUSED;
	return cc.error_code == NGTCP2_NO_ERROR ? -ECONNRESET : -EPROTO;
}

static void conn_read(struct quic_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len)
{
	ngtcp2_pkt_info pi = {0};
	int rv;

	if (c->closing)
		return;
	rv = ngtcp2_conn_read_pkt(c->conn, path, &pi, pkt, len, now_ns());
	c->dirty = true;
	switch (rv) {
	case 0:
		return;
	case NGTCP2_ERR_DRAINING:
		conn_enter_closing(c, peer_close_error(c));
		return;
	case NGTCP2_ERR_DROP_CONN:
		conn_enter_closing(c, -ECONNRESET);
		c->delete_at_us = 0;
		return;
	default:
		conn_fail(c, read_error(c, rv));
	}
}

/* ---- the write path ---- */

/* Vectors of s's unsent bytes; *fin when they reach a queued FIN. */
static size_t stream_iov(struct quic_stream *s, ngtcp2_vec *v, bool *fin)
{
	size_t n = 0;
	uint64_t end = s->sent;

	for (GList *it = s->chunks.head; it && n < STREAM_IOV; it = it->next) {
		struct chunk *ch = it->data;

		if (ch->start + ch->len <= s->sent || ch->len == 0)
			continue;
		uint64_t skip = s->sent > ch->start ? s->sent - ch->start : 0;

		v[n].base = (uint8_t *)ch->data + skip;
		v[n].len = ch->len - skip;
		end = ch->start + ch->len;
		n++;
	}
	*fin = s->fin_queued && !s->fin_sent && end == s->queued_end;
	return n;
}

static void stream_advance(struct quic_conn *c, struct quic_stream *s, ngtcp2_ssize n, bool fin)
{
	if (n > 0)
		s->sent += (uint64_t)n;
	if (fin && n >= 0 && s->sent == s->queued_end)
		s->fin_sent = true;
	if (s->sent == s->queued_end && (!s->fin_queued || s->fin_sent) && s->in_sendq) {
		g_queue_remove(&c->sendq, s);
		s->in_sendq = false;
	}
}

static void stream_blocked(struct quic_conn *c, struct quic_stream *s)
{
	if (s->in_sendq) {
		g_queue_remove(&c->sendq, s);
		s->in_sendq = false; /* extend_max_stream_data puts it back */
	}
}

static void conn_write(struct quic_conn *c)
{
	uint8_t *buf = c->loop->tx;
	size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
	size_t pmtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
	size_t max_pkts = MIN(MIN(ngtcp2_conn_get_send_quantum(c->conn) / mtu, MAX_GSO_SEGMENTS),
			      TX_BUF_SIZE / mtu);
	size_t off = 0, npkts = 0, seg = 0;
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	uint64_t ts = now_ns();

	c->dirty = false;
	ngtcp2_path_storage_zero(&ps);
	max_pkts = MAX(max_pkts, 1);
	for (;;) {
		struct quic_stream *s = g_queue_peek_head(&c->sendq);
		ngtcp2_vec v[STREAM_IOV];
		bool fin = false;
		size_t nv = s ? stream_iov(s, v, &fin) : 0;
		uint32_t flags = s ? NGTCP2_WRITE_STREAM_FLAG_MORE : 0;
		ngtcp2_ssize datalen = -1;

		if (fin)
			flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, buf + off, mtu,
							   &datalen, flags, s ? s->id : -1, v, nv, ts);
		if (n == NGTCP2_ERR_WRITE_MORE) {
			stream_advance(c, s, datalen, fin);
			if (s->in_sendq && g_queue_peek_head(&c->sendq) == s) { /* round robin */
				g_queue_pop_head(&c->sendq);
				g_queue_push_tail(&c->sendq, s);
			}
			continue;
		}
		if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
		    n == NGTCP2_ERR_STREAM_NOT_FOUND) {
			stream_blocked(c, s);
			continue;
		}
		if (n < 0) {
			ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, (int)n, NULL, 0);
			conn_fail(c, -EPROTO);
			return;
		}
		if (s && datalen >= 0)
			stream_advance(c, s, datalen, fin);
		if (n == 0)
			break;
		if (npkts > 0 && ((size_t)n > seg || (seg > pmtu && (size_t)n != seg))) {
			sock_send(c->sock, buf, off, seg, &c->remote, c->remotelen);
			sock_send(c->sock, buf + off, (size_t)n, (size_t)n, &c->remote, c->remotelen);
			off = npkts = 0;
			break;
		}
		if (npkts == 0)
			seg = (size_t)n;
		off += (size_t)n;
		if (++npkts == max_pkts || (size_t)n < seg)
			break;
	}
	if (off)
		sock_send(c->sock, buf, off, seg, &c->remote, c->remotelen);
	ngtcp2_conn_update_pkt_tx_time(c->conn, ts);
	/* A full batch may leave more to send: come back next turn. */
	c->dirty = npkts == max_pkts;
}

/* ---- the listener ---- */

static struct quic_conn *accept_conn(struct quic_listener *ls, const ngtcp2_pkt_hd *hd,
				     const struct sockaddr_storage *from, socklen_t fromlen)
{
	struct quic_conn *c = conn_alloc(ls->loop, ls->ops, ls->user);
	ngtcp2_callbacks cb;
	ngtcp2_settings s;
	ngtcp2_transport_params p;
	ngtcp2_cid scid;

	c->server = true;
	c->ls = ls;
	c->sock = ls->sock;
	c->remote = *from;
	c->remotelen = fromlen;
	c->odcid = hd->dcid;
	scid.datalen = SCID_LEN;
	gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, SCID_LEN);
	fill_callbacks(&cb, true);
	fill_settings(&ls->set, &s, &p);
	p.original_dcid = hd->dcid;
	p.stateless_reset_token_present = 1;
	ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, ls->reset_secret,
						     sizeof(ls->reset_secret), &scid);
	ngtcp2_path path = conn_path(c);

	if (ngtcp2_conn_server_new(&c->conn, &hd->scid, &scid, &path, hd->version, &cb, &s, &p, NULL,
				   c) != 0 ||
	    quic_tls_session_new(ls->tls, true, NULL, &c->ref, &c->tls) < 0) {
		c->reported = true;
		conn_delete(c);
		return NULL;
	}
	ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
	route_add(ls, &scid, c);
	route_add(ls, &hd->dcid, c);
	return c;
}

static void listener_datagram(struct quic_listener *ls, const uint8_t *pkt, size_t len,
			      const struct sockaddr_storage *from, socklen_t fromlen)
{
	ngtcp2_version_cid vc;
	ngtcp2_pkt_hd hd;
	struct quic_conn *c;

	if (ngtcp2_pkt_decode_version_cid(&vc, pkt, len, SCID_LEN) != 0)
		return; /* garbage, or a version we do not speak: dropped */
	struct cid_key key;

	if (!cid_key_set(&key, vc.dcid, vc.dcidlen))
		return;
	c = g_hash_table_lookup(ls->cids, &key);
	if (!c) {
		if (ngtcp2_accept(&hd, pkt, len) != 0)
			return;
		c = accept_conn(ls, &hd, from, fromlen);
		if (!c)
			return;
	}
	ngtcp2_path path = {{(struct sockaddr *)&ls->sock->local, ls->sock->locallen},
			    {(struct sockaddr *)from, fromlen},
			    NULL};

	conn_read(c, &path, pkt, len);
}

int quic_listen(struct quic_loop *l, const char *host, uint16_t port, struct net_tls *tls,
		const struct quic_settings *set, const struct quic_conn_ops *ops, void *user,
		struct quic_listener **out)
{
	struct quic_listener *ls = g_new0(struct quic_listener, 1);
	struct sockaddr_storage addr;
	socklen_t len;
	int rc = resolve(host, port, &addr, &len);

	if (rc < 0)
		goto fail;
	ls->sock = sock_open(l, &addr, len, false, &rc);
	if (!ls->sock)
		goto fail;
	ls->sock->ls = ls;
	ls->loop = l;
	ls->tls = tls;
	ls->set = *set;
	ls->ops = ops;
	ls->user = user;
	ls->cids = g_hash_table_new_full(cid_key_hash, cid_key_equal, g_free, NULL);
	gnutls_rnd(GNUTLS_RND_RANDOM, ls->reset_secret, sizeof(ls->reset_secret));
	*out = ls;
	return 0;
fail:
	g_free(ls);
	return rc;
}

uint16_t quic_listener_port(const struct quic_listener *ls)
{
	const struct sockaddr_storage *a = &ls->sock->local;

	return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
					      : ((const struct sockaddr_in *)a)->sin_port);
}

void quic_listener_close(struct quic_listener *ls)
{
	GList *conns = g_list_copy(ls->loop->conns);

	for (GList *it = conns; it; it = it->next) {
		struct quic_conn *c = it->data;

		if (c->ls == ls) {
			quic_conn_close(c, QUIC_APP_SHUTDOWN);
			conn_delete(c);
		}
	}
	g_list_free(conns);
	sock_close(ls->sock);
	g_hash_table_destroy(ls->cids);
	g_free(ls);
}

/* ---- reading sockets ---- */

static size_t gro_segment(struct msghdr *m, size_t len)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm))
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
			int seg;

			memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
			return seg > 0 ? (size_t)seg : len;
		}
	return len;
}

static void sock_datagram(struct quic_sock *s, const uint8_t *pkt, size_t len,
			  struct sockaddr_storage *from, socklen_t fromlen)
{
	if (s->ls) {
		listener_datagram(s->ls, pkt, len, from, fromlen);
	} else if (s->conn) {
		ngtcp2_path path = conn_path(s->conn);

		conn_read(s->conn, &path, pkt, len);
	}
}

static void sock_readable(struct quic_sock *s)
{
	struct quic_loop *l = s->loop;
	struct mmsghdr msgs[RX_SLOTS];
	struct iovec iov[RX_SLOTS];
	struct sockaddr_storage from[RX_SLOTS];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl[RX_SLOTS];

	for (int round = 0; round < 64; round++) { /* bounded: let timers and writes run */
		for (int i = 0; i < RX_SLOTS; i++) {
			iov[i] = (struct iovec){l->rx + (size_t)i * RX_SLOT_SIZE, RX_SLOT_SIZE};
			msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							  .msg_iov = &iov[i], .msg_iovlen = 1,
							  .msg_control = ctl[i].buf,
							  .msg_controllen = sizeof(ctl[i].buf)};
		}
		int n = recvmmsg(s->fd, msgs, RX_SLOTS, MSG_DONTWAIT, NULL);

		if (n < 0 && errno == ECONNREFUSED && s->conn && !s->conn->closing) {
			/* ICMP port unreachable: nothing listens there. */
			conn_enter_closing(s->conn, -ECONNREFUSED);
			s->conn->delete_at_us = 0;
			return;
		}
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			size_t len = msgs[i].msg_len, seg = gro_segment(&msgs[i].msg_hdr, len);

			for (size_t off = 0; off < len; off += seg)
				sock_datagram(s, (uint8_t *)iov[i].iov_base + off, MIN(seg, len - off),
					      &from[i], msgs[i].msg_hdr.msg_namelen);
		}
		if (n < RX_SLOTS)
			return;
	}
}

/* ---- the loop ---- */

struct quic_loop *quic_loop_new(void)
{
	struct quic_loop *l = g_new0(struct quic_loop, 1);
	struct epoll_event ee = {.events = EPOLLIN};

	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->rx = g_malloc((size_t)RX_SLOTS * RX_SLOT_SIZE);
	l->armed_ns = UINT64_MAX;
	g_mutex_init(&l->lock);
	l->wake_ev = (struct ev){EV_WAKE, l};
	l->timer_ev = (struct ev){EV_TIMER, l};
	ee.data.ptr = &l->wake_ev;
	epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ee);
	ee.data.ptr = &l->timer_ev;
	epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->timerfd, &ee);
	return l;
}

void quic_loop_post(struct quic_loop *l, void (*fn)(void *), void *arg)
{
	struct post *p = g_new(struct post, 1);
	uint64_t one = 1;

	p->fn = fn;
	p->arg = arg;
	g_mutex_lock(&l->lock);
	g_queue_push_tail(&l->posts, p);
	g_mutex_unlock(&l->lock);
	if (write(l->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		g_warning("cannot wake the network loop: %s", g_strerror(errno));
}

static gint timer_cmp(gconstpointer a, gconstpointer b)
{
	const struct app_timer *x = a, *y = b;

	return x->deadline_us < y->deadline_us ? -1 : x->deadline_us > y->deadline_us;
}

void quic_loop_add_timer(struct quic_loop *l, gint64 deadline_us, void (*fn)(void *), void *arg)
{
	struct app_timer *t = g_new(struct app_timer, 1);

	*t = (struct app_timer){deadline_us, fn, arg};
	l->timers = g_list_insert_sorted(l->timers, t, timer_cmp);
}

static void run_posts(struct quic_loop *l)
{
	uint64_t v;
	struct post *p;

	if (read(l->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	for (;;) {
		g_mutex_lock(&l->lock);
		p = g_queue_pop_head(&l->posts);
		g_mutex_unlock(&l->lock);
		if (!p)
			return;
		p->fn(p->arg);
		g_free(p);
	}
}

static void run_deadlines(struct quic_loop *l)
{
	gint64 now_us = quic_loop_now_us();
	uint64_t now = now_ns();
	GList *conns = g_list_copy(l->conns);

	while (l->timers && ((struct app_timer *)l->timers->data)->deadline_us <= now_us) {
		struct app_timer *t = l->timers->data;

		l->timers = g_list_delete_link(l->timers, l->timers);
		t->fn(t->arg);
		g_free(t);
	}
	for (GList *it = conns; it; it = it->next) {
		struct quic_conn *c = it->data;

		if (!g_list_find(l->conns, c))
			continue; /* deleted by an earlier step */
		if (c->closing) {
			if (c->delete_at_us <= now_us)
				conn_delete(c);
			continue;
		}
		if (ngtcp2_conn_get_expiry(c->conn) > now)
			continue;
		int rv = ngtcp2_conn_handle_expiry(c->conn, now);

		if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
			conn_enter_closing(c, -ETIMEDOUT);
			c->delete_at_us = 0;
		} else if (rv != 0) {
			ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
			conn_fail(c, -EPROTO);
		} else {
			c->dirty = true;
		}
	}
	g_list_free(conns);
}

static void write_dirty(struct quic_loop *l)
{
	GList *conns = g_list_copy(l->conns);

	for (GList *it = conns; it; it = it->next) {
		struct quic_conn *c = it->data;

		if (g_list_find(l->conns, c) && c->dirty && !c->closing)
			conn_write(c);
	}
	g_list_free(conns);
}

/* The earliest deadline of any connection or application timer, in
 * CLOCK_MONOTONIC nanoseconds (UINT64_MAX: none); *busy when a connection
 * still has packets to write. */
static uint64_t next_deadline(struct quic_loop *l, bool *busy)
{
	uint64_t next = UINT64_MAX;

	*busy = false;
	for (GList *it = l->conns; it; it = it->next) {
		struct quic_conn *c = it->data;

		*busy |= c->dirty && !c->closing;
		next = MIN(next, c->closing ? (uint64_t)c->delete_at_us * 1000
					    : ngtcp2_conn_get_expiry(c->conn));
	}
	if (l->timers)
		next = MIN(next, (uint64_t)((struct app_timer *)l->timers->data)->deadline_us * 1000);
	return next;
}

/* Fallback only: arms the timerfd to `next`, if it changed. */
static void arm_timerfd(struct quic_loop *l, uint64_t next)
{
	struct itimerspec its = {0};

	if (next == l->armed_ns)
		return;
	if (next != UINT64_MAX) {
		uint64_t at = MAX(next, 1); /* 0 would disarm */

		its.it_value.tv_sec = (time_t)(at / 1000000000u);
		its.it_value.tv_nsec = (long)(at % 1000000000u);
	}
	timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	l->armed_ns = next;
}

/* Waits for events until the earliest deadline, or not at all when a
 * connection has packets to write. The deadline goes into epoll_pwait2's
 * nanosecond timeout: the earliest deadline moves on nearly every turn (ACK
 * and pacing timers), and re-arming a timerfd each time was 7% of a node's
 * CPU for puts (a system call costs much on this kind of VM). A kernel or
 * sandbox without epoll_pwait2 gets the timerfd. */
static int loop_wait(struct quic_loop *l, struct epoll_event *evs, int max)
{
	bool busy;
	uint64_t next = next_deadline(l, &busy), now;
	struct timespec ts = {0};
	int n;

	if (l->use_timerfd) {
		arm_timerfd(l, next);
		return epoll_wait(l->epfd, evs, max, busy ? 0 : -1);
	}
	if (!busy && next != UINT64_MAX && next > (now = now_ns())) {
		ts.tv_sec = (time_t)((next - now) / 1000000000u);
		ts.tv_nsec = (long)((next - now) % 1000000000u);
	}
	n = epoll_pwait2(l->epfd, evs, max, !busy && next == UINT64_MAX ? NULL : &ts, NULL);
	if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
		g_message("epoll_pwait2 unavailable (%s): timers use a timerfd", g_strerror(errno));
		l->use_timerfd = true;
		return 0;
	}
	return n;
}

static gpointer loop_main(gpointer data)
{
	struct quic_loop *l = data;
	struct epoll_event evs[32];

	/* Pacing deadlines are microseconds apart: the default 50 us of timer
	 * slack would add up to that much to every wait. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	while (!l->stop) {
		int n = loop_wait(l, evs, G_N_ELEMENTS(evs));

		for (int i = 0; i < n; i++) {
			struct ev *ev = evs[i].data.ptr;

			if (ev->kind == EV_WAKE) {
				run_posts(l);
			} else if (ev->kind == EV_TIMER) {
				uint64_t v;

				if (read(l->timerfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					g_warning("timerfd: %s", g_strerror(errno));
				l->armed_ns = UINT64_MAX; /* fired: re-arm on the next turn */
			} else {
				struct quic_sock *s = ev->ptr;

				if (s->fd < 0)
					continue; /* closed earlier in this turn */
				if (evs[i].events & EPOLLOUT)
					sock_writable(s);
				/* An ICMP error (port unreachable) shows as EPOLLERR
				 * alone; only a read clears it. */
				if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
					sock_readable(s);
			}
		}
		run_deadlines(l);
		write_dirty(l);
		g_slist_free_full(l->dead_socks, g_free);
		l->dead_socks = NULL;
	}
	return NULL;
}

int quic_loop_start(struct quic_loop *l, const char *name)
{
	l->thread = g_thread_new(name, loop_main, l);
	return 0;
}

static void stop_loop(void *arg)
{
	struct quic_loop *l = arg;

	while (l->conns) {
		struct quic_conn *c = l->conns->data;

		quic_conn_close(c, QUIC_APP_SHUTDOWN);
		conn_delete(c);
	}
	l->stop = true;
}

void quic_loop_free(struct quic_loop *l)
{
	if (!l)
		return;
	if (l->thread) {
		quic_loop_post(l, stop_loop, l);
		g_thread_join(l->thread);
	} else {
		stop_loop(l);
	}
	g_list_free_full(l->timers, g_free);
	g_slist_free_full(l->dead_socks, g_free);
	close(l->epfd);
	close(l->timerfd);
	close(l->wakefd);
	g_free(l->rx);
	g_mutex_clear(&l->lock);
	g_free(l);
}
