/*
 * mount.c - `shardfs mount [-c] CLUSTER MNT [-o OPTS] [-f]`, and the same
 * as `mount.shardfs CLUSTER.conf MNT [-o OPTS]`, the helper mount(8) runs
 * for /etc/fstab lines of type shardfs:
 *
 *     /etc/shardfs/cluster.conf /mnt/x shardfs defaults,_netdev 0 0
 *
 * Options mount(8) passes that are not FUSE's (defaults, _netdev, auto,
 * noauto, user, nofail, rw) are dropped; streams=DIR[:DIR...] (those
 * directories, relative to the mount, become stream directories),
 * repair_interval=S, repair_rate=MIB, meta_connections=N, session_lease=S,
 * meta_timeout=S, backup_interval=S, backups_kept=N (as the long options) and metrics=ADDR:PORT are shardfs's own; the rest
 * (allow_other, default_permissions, ro, ...) go to libfuse and the kernel.
 */
#define G_LOG_DOMAIN "shardfs"

#include "fuse/fs.h"
#include "shardfs.h"
#include "store/store.h"
#include "tools/local_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const mount8_only[] = {"defaults", "_netdev", "auto", "noauto", "user",
					  "users", "nouser", "nofail", "rw", NULL};

/* The -o options that are shardfs's own, not FUSE's. */
struct own_options {
	char *streams;	/* streams=DIR[:DIR...], or NULL */
	char *metrics;	/* metrics=ADDR:PORT, or NULL */
	int *repair_s;	/* repair_interval=S if given (-1 if not a number) */
	int *repair_rate; /* repair_rate=MIB if given (-1 if not a number) */
	int *meta_connections; /* meta_connections=N if given (-1 if not a number) */
	int *session_lease; /* session_lease=S if given (-1 if not a number) */
	int *backup_interval; /* backup_interval=S if given (-1 if not a number) */
	int *backups_kept; /* backups_kept=N if given (-1 if not a number) */
	int *meta_timeout; /* meta_timeout=S if given (-1 if not a number) */
};

/* Takes a number option name=N (0..max) of list item o into *value; -1
 * there when N is not such a number. */
static bool take_number(const char *o, const char *name, guint64 max, int *value)
{
	size_t n = strlen(name);
	guint64 v;

	if (strncmp(o, name, n) || o[n] != '=')
		return false;
	*value = g_ascii_string_to_unsigned(o + n + 1, 10, 0, max, &v, NULL) ? (int)v : -1;
	return true;
}

/* Takes a value option name=V of list item o into *value. */
static bool take_value(const char *o, const char *name, char **value)
{
	size_t n = strlen(name);

	if (strncmp(o, name, n) || o[n] != '=')
		return false;
	g_free(*value);
	*value = g_strdup(o + n + 1);
	return true;
}

/* fsname=shardfs, plus the options that are FUSE's, comma-separated; the
 * rest into own. */
static char *fuse_options(const char *opts, struct own_options *own)
{
	GString *out = g_string_new("fsname=shardfs,subtype=shardfs");
	char **list = g_strsplit(opts ? opts : "", ",", -1);

	for (char **o = list; *o; o++) {
		if (take_value(*o, "streams", &own->streams) || take_value(*o, "metrics", &own->metrics) ||
		    take_number(*o, "repair_interval", 86400, own->repair_s) ||
		    take_number(*o, "repair_rate", 100000, own->repair_rate) ||
		    take_number(*o, "meta_connections", 64, own->meta_connections) ||
		    take_number(*o, "session_lease", 86400, own->session_lease) ||
		    take_number(*o, "backup_interval", 604800, own->backup_interval) ||
		    take_number(*o, "backups_kept", 10000, own->backups_kept) ||
		    take_number(*o, "meta_timeout", 86400, own->meta_timeout))
			continue;
		if (**o && !g_strv_contains(mount8_only, *o))
			g_string_append_printf(out, ",%s", *o);
	}
	g_strfreev(list);
	return g_string_free(out, FALSE);
}

/* A mount point must be a directory with no shardfs mounted on it yet:
 * a mount over a file gives EIO on every stat, and a second one stacks
 * silently over the first. */
static bool mountpoint_ok(const char *mnt)
{
	struct stat st;

	if (stat(mnt, &st) < 0) {
		fprintf(stderr, "shardfs mount: %s: %s\n", mnt, g_strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "shardfs mount: %s: not a directory (--force mounts on it)\n", mnt);
		return false;
	}
	if (local_mount_is_mounted(mnt)) {
		fprintf(stderr, "shardfs mount: %s: a shardfs is mounted there already"
				" (unmount it first: fusermount3 -u %s, or give --force)\n", mnt, mnt);
		return false;
	}
	return true;
}

int cmd_mount(int argc, char **argv)
{
	gboolean foreground = FALSE, debug = FALSE, force = FALSE;
	char **opts = NULL, *named = NULL;
	int threads = 16, repair_interval = 30, repair_rate = STORE_REPAIR_RATE_MIB, metas = 8;
	int lease = META_LEASE_DEFAULT_S, backup_interval = 3600, kept = STORE_BACKUPS_KEPT;
	int meta_timeout = META_WAIT_DEFAULT_S;
	GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &named, "cluster file or directory (default: the first argument, or $SHARDFS_CONF)", "CLUSTER"},
		{"options", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &opts, "mount options (allow_other, default_permissions, ro, streams=DIR[:DIR...], repair_interval=S, repair_rate=MIB, meta_connections=N, session_lease=S, meta_timeout=S, backup_interval=S, backups_kept=N, metrics=ADDR:PORT, ...)", "OPTS"},
		{"foreground", 'f', 0, G_OPTION_ARG_NONE, &foreground, "stay in the foreground", NULL},
		{"force", 0, 0, G_OPTION_ARG_NONE, &force, "mount even on a regular file or over a shardfs already mounted there", NULL},
		{"debug", 'd', 0, G_OPTION_ARG_NONE, &debug, "print every FUSE request (implies -f)", NULL},
		{"threads", 0, 0, G_OPTION_ARG_INT, &threads, "FUSE worker threads (default 16)", "N"},
		{"repair-interval", 0, 0, G_OPTION_ARG_INT, &repair_interval,
		 "seconds between the mount's passes that rebuild missing shards (default 30, 0: none)", "S"},
		{"repair-rate", 0, 0, G_OPTION_ARG_INT, &repair_rate,
		 "MiB/s the mount's repair reads at most (default " G_STRINGIFY(STORE_REPAIR_RATE_MIB) ", 0: unbounded)", "MIB"},
		{"meta-connections", 0, 0, G_OPTION_ARG_INT, &metas,
		 "connections to the metadata engine that the FUSE threads share (default 8)", "N"},
		{"session-lease", 0, 0, G_OPTION_ARG_INT, &lease,
		 "seconds without a heartbeat after which other mounts take back this mount's locks and"
		 " open files (default " G_STRINGIFY(META_LEASE_DEFAULT_S) ")", "S"},
		{"meta-timeout", 0, 0, G_OPTION_ARG_INT, &meta_timeout,
		 "seconds operations wait for a metadata server that went away before they fail with"
		 " EIO (default " G_STRINGIFY(META_WAIT_DEFAULT_S) ")", "S"},
		{"backup-interval", 0, 0, G_OPTION_ARG_INT, &backup_interval,
		 "seconds at most between backups of the metadata into the cluster, made by one mount"
		 " of the cluster (and at its unmount); default 3600, 0: none", "S"},
		{"backups-kept", 0, 0, G_OPTION_ARG_INT, &kept,
		 "backups of the metadata the cluster keeps (default " G_STRINGIFY(STORE_BACKUPS_KEPT) ")", "N"},
		G_OPTION_ENTRY_NULL,
	};

	if (!tools_parse(argc, argv, entries, "[CLUSTER] MNT - mount the cluster's files on MNT"))
		return SHARDFS_EXIT_USAGE;
	/* mount(8) calls helpers as SPEC DIR; the cluster may also come from
	 * -c or SHARDFS_CONF, as for every command. */
	gboolean spec_given = argc == 3 && !named;
	g_autofree char *joined = opts ? g_strjoinv(",", opts) : NULL;
	struct own_options own = {.repair_s = &repair_interval, .repair_rate = &repair_rate,
				  .meta_connections = &metas, .session_lease = &lease,
				  .backup_interval = &backup_interval, .backups_kept = &kept,
				  .meta_timeout = &meta_timeout};
	g_autofree char *fuse_opts = fuse_options(joined, &own);
	g_autofree char *streams = own.streams, *metrics = own.metrics;
	if (!(spec_given || argc == 2) || threads < 1 || threads > 256 || repair_interval < 0 ||
	    repair_interval > 86400 || repair_rate < 0 || repair_rate > 100000 || metas < 1 ||
	    metas > 64 || lease < 3 || lease > 86400 || backup_interval < 0 ||
	    backup_interval > 604800 || kept < 1 || kept > 10000 || meta_timeout < 1 ||
	    meta_timeout > 86400) {
		fprintf(stderr, "usage: shardfs mount [-c CLUSTER | CLUSTER] MNT [-o OPTS] [-f]"
				" (repair interval 0..86400 s, repair rate 0..100000 MiB/s,"
				" metadata connections 1..64, session lease 3..86400 s,"
				" backup interval 0..604800 s, backups kept 1..10000,"
				" metadata timeout 1..86400 s)\n");
		g_strfreev(opts);
		g_free(named);
		return SHARDFS_EXIT_USAGE;
	}
	g_autofree char *conf = NULL;
	const char *mnt = argv[argc - 1];
	int rc = tools_cluster_file("mount", spec_given ? argv[1] : named, &conf);

	g_free(named);
	if (rc) {
		g_strfreev(opts);
		return rc;
	}
	struct fs_mount_options o = {
		.cluster_conf = conf,
		.mountpoint = mnt,
		.fuse_opts = fuse_opts,
		.stream_dirs = streams,
		.foreground = foreground || debug,
		.debug = debug,
		.max_threads = (unsigned)threads,
		.repair_interval_s = (unsigned)repair_interval,
		.repair_bytes_per_s = (uint64_t)repair_rate << 20,
		.metrics_addr = metrics,
		.meta_connections = (unsigned)metas,
		.session_lease_s = (unsigned)lease,
		.backup_interval_s = (unsigned)backup_interval,
		.backups_kept = (unsigned)kept,
	};
	g_strfreev(opts);
	meta_set_wait_timeout((unsigned)meta_timeout);
	return force || mountpoint_ok(mnt) ? fs_mount_run(&o) : SHARDFS_EXIT_FAIL;
}
