/*
 * error.h - the project's one error space.
 *
 * Every function of every module returns 0 or a negative number: a
 * negative errno (-1 .. -4095), or a project code below -4096 for the
 * conditions errno has no word for. Each module owns a range of 32 codes,
 * all declared here so that common_strerror can name every one of them
 * without depending on the module; a module's header includes this one.
 * A code is never reused for another meaning, and never renumbered: some
 * of them cross the wire (net/net_proto.h lists which).
 *
 * Codes are mapped to errno once, at the FUSE reply (fuse/), nowhere else.
 */
#ifndef SHARDFS_COMMON_ERROR_H
#define SHARDFS_COMMON_ERROR_H

#include <stdbool.h>

/* errno values are above this; project codes below it. */
#define COMMON_ERR_BASE (-4096)

/* wal: -4097 .. -4127 */
#define WAL_ERR_FIRST (-4097)
#define WAL_ECORRUPT (-4097) /* a record failed its CRC */
#define WAL_EBADSEG (-4098)  /* a file is not a segment of this format */
#define WAL_ERR_LAST (-4127)

/* net: -4128 .. -4159 */
#define NET_ERR_FIRST (-4128)
#define NET_EPROTO (-4128)    /* malformed request or response */
#define NET_ETIMEDOUT (-4129) /* no answer within the request deadline */
#define NET_ECONNLOST (-4130) /* the connection died with the request open */
#define NET_EEOF (-4131)      /* end of stream: its writers closed */
#define NET_ETLSREFUSED (-4132) /* the peer refused our certificate (TLS alert) */
#define NET_ETLSVERIFY (-4133)  /* the peer's certificate failed our verification */
#define NET_ERR_LAST (-4159)

/* store: -4160 .. -4191 */
#define STORE_ERR_FIRST (-4160)
#define STORE_EUNAVAIL (-4160) /* too few nodes answer to store or read a part */
#define STORE_ECORRUPT (-4161) /* no k shards of a part agree with its checksum */
#define STORE_EEOF (-4162)     /* end of stream: every writer closed */
#define STORE_ERR_LAST (-4191)

/* Whether err is a project code rather than an errno. */
static inline bool common_err_is_project(int err)
{
	return err <= COMMON_ERR_BASE;
}

/*
 * Text for any error: every project code of every module by name, an
 * errno by strerror(-err), "success" for 0. Never NULL; the string is
 * static (or glib's, which lives as long as the process).
 */
const char *common_strerror(int err);

#endif
