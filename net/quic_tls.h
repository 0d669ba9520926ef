/*
 * quic_tls.h - what quic.c needs of tls.c (private to net/).
 */
#ifndef SHARDFS_NET_QUIC_TLS_H
#define SHARDFS_NET_QUIC_TLS_H

#include <gnutls/gnutls.h>
#include <stdbool.h>

struct net_tls;

/* A session configured for ngtcp2 with ALPN, credentials and peer
 * verification (host: the name or address the client dialled). conn_ref is
 * the ngtcp2_crypto_conn_ref the session points to. 0, -ENOMEM or -EINVAL. */
int quic_tls_session_new(struct net_tls *t, bool server, const char *host, void *conn_ref,
			 gnutls_session_t *out);
/* True when the peer agreed on our ALPN. */
bool quic_tls_alpn_ok(gnutls_session_t s);
/* Why a failed handshake failed on this side, as text (g_free): what
 * verification of the peer's certificate found, or that it sent none. */
char *quic_tls_failure(gnutls_session_t s);

#endif
