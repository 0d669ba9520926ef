/*
 * xattr.c - extended attributes the mount answers without the metadata.
 *
 * security.capability: the kernel asks for it before every WRITE to a file
 * (to drop a set-capability on write), which made each 1 MiB write wait
 * for a metadata query. The mount does not store file capabilities:
 * setting one fails with EOPNOTSUPP, as on a nosuid mount where they
 * would have no effect anyway, so asking for one is answered ENODATA at
 * once. A capability stored by an older version stays listed and
 * removable, and is no longer reported.
 */
#define G_LOG_DOMAIN "shardfs-fuse"

#include "fs_internal.h"

#include <errno.h>
#include <string.h>

#define XATTR_CAPABILITY "security.capability"

bool fs_xattr_reply_get(fuse_req_t req, const char *name)
{
	if (strcmp(name, XATTR_CAPABILITY))
		return false;
	fuse_reply_err(req, ENODATA);
	return true;
}

bool fs_xattr_reply_set(fuse_req_t req, const char *name)
{
	if (strcmp(name, XATTR_CAPABILITY))
		return false;
	fuse_reply_err(req, EOPNOTSUPP);
	return true;
}
