/*
 * tls.c - GnuTLS credentials and per-connection sessions for QUIC.
 *
 * Mutual TLS only: a node requires a client certificate signed by the
 * cluster CA (checked by GnuTLS during the handshake, with the TLS client
 * key purpose); a client checks that the node's certificate is signed by
 * the CA and names the address it dialled. TLS 1.3, AES-128-GCM first
 * (ChaCha20 is an order of magnitude slower with this GnuTLS build), no
 * middlebox compatibility mode (RFC 9001 §8.4).
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "net.h"
#include "quic_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <string.h>

#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:" \
		 "%DISABLE_TLS13_COMPAT_MODE"

struct net_tls {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
};

static gnutls_typed_vdata_st client_purpose = {
	GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};

int net_tls_new(const char *ca, const char *cert, const char *key, struct net_tls **out,
		GError **err)
{
	struct net_tls *t = g_new0(struct net_tls, 1);
	int rc;

	gnutls_certificate_allocate_credentials(&t->cred);
	rc = gnutls_certificate_set_x509_trust_file(t->cred, ca, GNUTLS_X509_FMT_PEM);
	if (rc <= 0) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "CA certificate %s: %s", ca,
			    rc == 0 ? "no certificate in file" : gnutls_strerror(rc));
		goto fail;
	}
	/* Without an identity a client is refused by every node; allowed so
	 * that the refusal can be seen (and tested). */
	rc = cert && key ? gnutls_certificate_set_x509_key_file(t->cred, cert, key, GNUTLS_X509_FMT_PEM) : 0;
	if (rc < 0) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "certificate %s / key %s: %s", cert,
			    key, gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_priority_init(&t->prio, PRIORITY, NULL);
	if (rc < 0) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "TLS priority: %s", gnutls_strerror(rc));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	net_tls_free(t);
	return -EINVAL;
}

void net_tls_free(struct net_tls *t)
{
	if (!t)
		return;
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	gnutls_certificate_free_credentials(t->cred);
	g_free(t);
}

static bool is_ip_literal(const char *host)
{
	uint8_t buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int quic_tls_session_new(struct net_tls *t, bool server, const char *host, void *conn_ref,
			 gnutls_session_t *out)
{
	static const gnutls_datum_t alpn = {(unsigned char *)NET_ALPN, sizeof(NET_ALPN) - 1};
	gnutls_session_t s;
	int rc = gnutls_init(&s, server ? GNUTLS_SERVER : GNUTLS_CLIENT);

	if (rc < 0)
		return -ENOMEM;
	rc = server ? ngtcp2_crypto_gnutls_configure_server_session(s)
		    : ngtcp2_crypto_gnutls_configure_client_session(s);
	if (rc == 0)
		rc = gnutls_priority_set(s, t->prio);
	if (rc == 0)
		rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (rc == 0)
		rc = gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY);
	if (rc == 0 && server) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert2(s, &client_purpose, 1, 0);
	} else if (rc == 0) {
		if (!is_ip_literal(host))
			rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host));
		gnutls_session_set_verify_cert(s, host, 0);
	}
	if (rc != 0) {
		gnutls_deinit(s);
		return -EINVAL;
	}
	gnutls_session_set_ptr(s, conn_ref);
	*out = s;
	return 0;
}

bool quic_tls_alpn_ok(gnutls_session_t s)
{
	gnutls_datum_t d;

	return gnutls_alpn_get_selected_protocol(s, &d) == 0 && d.size == sizeof(NET_ALPN) - 1 &&
	       memcmp(d.data, NET_ALPN, d.size) == 0;
}

char *quic_tls_failure(gnutls_session_t s)
{
	unsigned status = gnutls_session_get_verify_cert_status(s);
	unsigned n = 0;
	gnutls_datum_t text;

	/* (unsigned)-1: nothing was verified, as when no certificate came */
	if (status && status != (unsigned)-1 &&
	    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text,
								   0) == 0) {
		char *out = g_strstrip(g_strndup((const char *)text.data, text.size));

		gnutls_free(text.data);
		return out;
	}
	if (!gnutls_certificate_get_peers(s, &n) || n == 0)
		return g_strdup("no certificate presented");
	return g_strdup("handshake failed");
}
