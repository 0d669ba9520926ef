/*
 * error.c - the text of every project error code (codes in error.h).
 *
 * One table for all modules, so that no layer has to know which module a
 * code came from to print it. An unknown code in a project range still
 * gets a text naming its range: a newer node may send a code this build
 * does not know yet.
 */
#include "error.h"

#include <glib.h>

struct code_text {
	int code;
	const char *text;
};

static const struct code_text codes[] = {
	{WAL_ECORRUPT, "record failed its checksum"},
	{WAL_EBADSEG, "not a shardfs segment file"},
	{NET_EPROTO, "malformed request or response"},
	{NET_ETIMEDOUT, "no answer before the deadline"},
	{NET_ECONNLOST, "connection lost with the request in flight"},
	{NET_EEOF, "end of stream"},
	{NET_ETLSREFUSED, "refused in the TLS handshake: the peer does not trust this host's"
			  " certificate (signed by another cluster's CA?)"},
	{NET_ETLSVERIFY, "TLS handshake failed: the peer's certificate does not verify against"
			 " the cluster's CA or the address dialled"},
	{STORE_EUNAVAIL, "too few storage nodes answer"},
	{STORE_ECORRUPT, "corrupt shards: fewer than k shards of a part are intact"},
	{STORE_EEOF, "end of stream"},
};

static const char *range_text(int err)
{
	if (err <= WAL_ERR_FIRST && err >= WAL_ERR_LAST)
		return "unknown storage (wal) error";
	if (err <= NET_ERR_FIRST && err >= NET_ERR_LAST)
		return "unknown network error";
	if (err <= STORE_ERR_FIRST && err >= STORE_ERR_LAST)
		return "unknown store error";
	return "unknown shardfs error";
}

const char *common_strerror(int err)
{
	if (!common_err_is_project(err))
		return g_strerror(err < 0 ? -err : err);
	for (size_t i = 0; i < G_N_ELEMENTS(codes); i++)
		if (codes[i].code == err)
			return codes[i].text;
	return range_text(err);
}
