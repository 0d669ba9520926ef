/*
 * quic.h - the one wrapper around ngtcp2 0.12 and GnuTLS (private to net/).
 *
 * A quic_loop is one thread with an epoll set: UDP sockets, a timerfd for
 * every connection's ngtcp2 deadline (nanosecond resolution: pacing needs
 * it), and an eventfd through which other threads post work. Every
 * function below, except quic_loop_new/_start/_stop/_free and
 * quic_loop_post, runs on the loop thread only; so do all callbacks.
 *
 * Connections carry streams; a stream's outgoing data is a queue of
 * borrowed buffers, each released (free_fn) once the peer acknowledged it
 * or the stream is gone, because ngtcp2 does not copy stream data.
 * Incoming flow-control credit is returned only by quic_stream_consume(), so
 * a receiver that cannot keep up slows the sender.
 *
 * Packets leave in GSO batches (UDP_SEGMENT) and arrive through recvmmsg
 * with GRO; where the kernel refuses either, the socket falls back to one
 * packet per system call.
 */
#ifndef SHARDFS_NET_QUIC_H
#define SHARDFS_NET_QUIC_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct net_tls;
struct quic_loop;
struct quic_conn;
struct quic_stream;
struct quic_listener;

/* Application error codes carried in stream resets and connection closes. */
#define QUIC_APP_NO_ERROR 0
#define QUIC_APP_PROTOCOL_ERROR 1
#define QUIC_APP_SHUTDOWN 2
#define QUIC_APP_CANCELLED 3

struct quic_conn_ops {
	/* The handshake completed and the peer's certificate was verified. */
	void (*on_ready)(struct quic_conn *c);
	/* The peer opened a stream (servers). */
	void (*on_stream_open)(struct quic_conn *c, struct quic_stream *s);
	/* Stream bytes in order; fin on the last call. */
	void (*on_stream_data)(struct quic_conn *c, struct quic_stream *s, const uint8_t *data,
			       size_t len, bool fin);
	/* The stream is gone (both sides closed, or reset): last call for s. */
	void (*on_stream_close)(struct quic_conn *c, struct quic_stream *s, bool reset);
	/* More streams may be opened (clients). */
	void (*on_streams_available)(struct quic_conn *c);
	/* The connection is gone; every stream got on_stream_close before.
	 * error: 0 for a clean close, else a negative errno. Last call for c. */
	void (*on_conn_close)(struct quic_conn *c, int error);
};

struct quic_settings {
	uint64_t conn_window;	/* initial connection flow-control window */
	uint64_t stream_window; /* initial per-stream window */
	uint64_t max_window, max_stream_window; /* auto-tuning ceilings */
	uint64_t max_streams;	/* bidirectional streams the peer may open */
	uint64_t idle_timeout_ms;
	uint64_t keepalive_ms;	/* 0: none */
};

void quic_settings_default(struct quic_settings *s);

struct quic_loop *quic_loop_new(void);
int quic_loop_start(struct quic_loop *l, const char *name);
/* Runs fn(arg) on the loop thread, soon. Safe from any thread. */
void quic_loop_post(struct quic_loop *l, void (*fn)(void *), void *arg);
/* Stops the thread (after closing every connection) and frees. */
void quic_loop_free(struct quic_loop *l);
gint64 quic_loop_now_us(void);
/* Calls fn(arg) at or after deadline_us (monotonic); one-shot. */
void quic_loop_add_timer(struct quic_loop *l, gint64 deadline_us, void (*fn)(void *), void *arg);

/* Binds host:port (port 0: any) and accepts connections from peers with a
 * certificate signed by the cluster CA. */
int quic_listen(struct quic_loop *l, const char *host, uint16_t port, struct net_tls *tls,
		const struct quic_settings *set, const struct quic_conn_ops *ops, void *user,
		struct quic_listener **out);
uint16_t quic_listener_port(const struct quic_listener *ls);
/* Closes every connection of the listener and its socket. */
void quic_listener_close(struct quic_listener *ls);

/* Starts a connection to host:port; the node's certificate must name host. */
int quic_connect(struct quic_loop *l, const char *host, uint16_t port, struct net_tls *tls,
		 const struct quic_settings *set, const struct quic_conn_ops *ops, void *user,
		 struct quic_conn **out);
void *quic_conn_user(const struct quic_conn *c);
bool quic_conn_is_ready(const struct quic_conn *c);
/* Closes gracefully (CONNECTION_CLOSE with app_error); on_conn_close follows. */
void quic_conn_close(struct quic_conn *c, uint64_t app_error);
uint64_t quic_conn_rtt_us(const struct quic_conn *c);

/* Opens a bidirectional stream: 0, or -EAGAIN while the peer's stream
 * limit is reached (on_streams_available tells when to retry). */
int quic_stream_open(struct quic_conn *c, struct quic_stream **out);
void *quic_stream_user(const struct quic_stream *s);
void quic_stream_set_user(struct quic_stream *s, void *user);
/* Queues len bytes (borrowed until free_fn(free_arg), which may be NULL);
 * fin ends the stream's sending side. */
void quic_stream_send(struct quic_stream *s, const void *data, size_t len,
		      void (*free_fn)(void *), void *free_arg, bool fin);
/* Returns n received bytes of stream-level flow-control credit. */
void quic_stream_consume(struct quic_stream *s, size_t n);
/* Returns n bytes of connection-level credit only (stream credit apart). */
void quic_conn_consume(struct quic_conn *c, size_t n);
/* Asks the peer to stop sending (STOP_SENDING); what we send goes on. */
void quic_stream_stop_reading(struct quic_stream *s, uint64_t app_error);
/* Aborts both directions; on_stream_close(reset=true) follows. */
void quic_stream_reset(struct quic_stream *s, uint64_t app_error);

#endif
