/*
 * bench.h - `shardfs bench MODE`: the benchmarks of the shardfs binary.
 *
 * Each mode measures one layer against this machine's own limit (dd, raw
 * TCP, local pipes, a local directory), prints a table or, with --json,
 * one JSON object of its figures (bench/kit.h prints both), and returns
 * the process exit status as the other subcommands do (tools/cli_args.h:
 * 0, 1 on failure, 2 on a usage error). Modes parse their options with
 * tools_parse of the same header; the clusters they need come from
 * tools/local_cluster.h.
 */
#ifndef SHARDFS_BENCH_H
#define SHARDFS_BENCH_H

/* `shardfs bench MODE [OPTIONS]`: argv[0] is "bench". */
int cmd_bench(int argc, char **argv);

/* The modes; argv[0] is the mode's name. */
int cmd_bench_wal(int argc, char **argv);
int cmd_bench_net(int argc, char **argv);
int cmd_bench_store(int argc, char **argv);
int cmd_bench_meta(int argc, char **argv);
int cmd_bench_fs(int argc, char **argv);
int cmd_bench_stream(int argc, char **argv);
int cmd_bench_repair(int argc, char **argv);

#endif
