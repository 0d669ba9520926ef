/*
 * pki.c - the cluster's certificates: a CA made by `shardfs init`, and the
 * node and client certificates it signs.
 *
 * Keys are ECDSA P-256 (fast handshakes, small certificates). Private keys
 * are created with mode 0600 and O_EXCL: an existing key is never
 * overwritten. Node certificates carry their address as a subject
 * alternative name (IP or DNS) and may act as TLS server and client (nodes
 * talk to each other for repair); client certificates are client-only.
 */
#define G_LOG_DOMAIN "shardfs-net"

#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VALID_DAYS (10 * 365)

static gboolean tls_ok(int rc, const char *what, GError **err)
{
	if (rc >= 0)
		return TRUE;
	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %s", what, gnutls_strerror(rc));
	return FALSE;
}

/* Writes data to a new file (never over an existing one) with mode. */
static gboolean write_new_file(const char *path, const gnutls_datum_t *data, mode_t mode,
			       GError **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	gboolean ok;

	if (fd < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create %s: %s",
			    path, g_strerror(errno));
		return FALSE;
	}
	ok = write(fd, data->data, data->size) == (ssize_t)data->size && fsync(fd) == 0;
	if (!ok)
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot write %s: %s",
			    path, g_strerror(errno));
	close(fd);
	return ok;
}

static gboolean export_pem(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
			   const char *cert_path, const char *key_path, GError **err)
{
	gnutls_datum_t c = {NULL, 0}, k = {NULL, 0};
	gboolean ok = tls_ok(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c), "export certificate", err) &&
		      tls_ok(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k), "export key", err) &&
		      write_new_file(key_path, &k, 0600, err) &&
		      write_new_file(cert_path, &c, 0644, err);

	gnutls_free(c.data);
	gnutls_free(k.data);
	return ok;
}

/* A fresh key and a certificate with the fields every cert here shares. */
static gboolean new_cert(const char *cn, gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key,
			 GError **err)
{
	uint8_t serial[16];
	time_t now = time(NULL);
	char *dn = g_strdup_printf("CN=%s,O=shardfs", cn);
	gboolean ok;

	gnutls_x509_crt_init(crt);
	gnutls_x509_privkey_init(key);
	gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f; /* a positive serial number */
	ok = tls_ok(gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
						 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
		    "generate key", err) &&
	     tls_ok(gnutls_x509_crt_set_version(*crt, 3), "set version", err) &&
	     tls_ok(gnutls_x509_crt_set_serial(*crt, serial, sizeof(serial)), "set serial", err) &&
	     tls_ok(gnutls_x509_crt_set_activation_time(*crt, now - 3600), "set activation", err) &&
	     tls_ok(gnutls_x509_crt_set_expiration_time(*crt, now + (time_t)VALID_DAYS * 86400),
		    "set expiration", err) &&
	     tls_ok(gnutls_x509_crt_set_dn(*crt, dn, NULL), "set subject", err) &&
	     tls_ok(gnutls_x509_crt_set_key(*crt, *key), "set key", err);
	g_free(dn);
	return ok;
}

gboolean net_pki_create_ca(const char *cert_path, const char *key_path, GError **err)
{
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	gboolean ok = new_cert("shardfs cluster CA", &crt, &key, err) &&
		      tls_ok(gnutls_x509_crt_set_basic_constraints(crt, 1, 0), "set CA", err) &&
		      tls_ok(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
								GNUTLS_KEY_CRL_SIGN),
			     "set key usage", err) &&
		      tls_ok(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), "self-sign", err) &&
		      export_pem(crt, key, cert_path, key_path, err);

	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return ok;
}

static gboolean load_ca(const char *cert_path, const char *key_path, gnutls_x509_crt_t *crt,
			gnutls_x509_privkey_t *key, GError **err)
{
	gnutls_datum_t c = {NULL, 0}, k = {NULL, 0};
	gboolean ok;

	gnutls_x509_crt_init(crt);
	gnutls_x509_privkey_init(key);
	ok = tls_ok(gnutls_load_file(cert_path, &c), cert_path, err) &&
	     tls_ok(gnutls_load_file(key_path, &k), key_path, err) &&
	     tls_ok(gnutls_x509_crt_import(*crt, &c, GNUTLS_X509_FMT_PEM), cert_path, err) &&
	     tls_ok(gnutls_x509_privkey_import(*key, &k, GNUTLS_X509_FMT_PEM), key_path, err);
	gnutls_free(c.data);
	gnutls_free(k.data);
	return ok;
}

static gboolean set_san(gnutls_x509_crt_t crt, const char *host, GError **err)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return tls_ok(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, &a4,
								   sizeof(a4), GNUTLS_FSAN_APPEND),
			      "set address", err);
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return tls_ok(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, &a6,
								   sizeof(a6), GNUTLS_FSAN_APPEND),
			      "set address", err);
	return tls_ok(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
							   (unsigned)strlen(host), GNUTLS_FSAN_APPEND),
		      "set host name", err);
}

gboolean net_pki_issue(const char *ca_cert, const char *ca_key, const char *cn, const char *host,
		       gboolean server, const char *cert_path, const char *key_path, GError **err)
{
	gnutls_x509_crt_t ca, crt;
	gnutls_x509_privkey_t cakey, key;
	gboolean ok = load_ca(ca_cert, ca_key, &ca, &cakey, err);

	if (!ok)
		goto out_ca;
	ok = new_cert(cn, &crt, &key, err) &&
	     tls_ok(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "set constraints", err) &&
	     tls_ok(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage", err) &&
	     tls_ok(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), "set purpose", err) &&
	     (!server || tls_ok(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0),
				"set purpose", err)) &&
	     (!host || set_san(crt, host, err)) &&
	     tls_ok(gnutls_x509_crt_sign2(crt, ca, cakey, GNUTLS_DIG_SHA256, 0), "sign", err) &&
	     export_pem(crt, key, cert_path, key_path, err);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
out_ca:
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(cakey);
	return ok;
}
