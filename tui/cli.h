/*
 * cli.h - the quantbench command table and small helpers shared by commands.
 *
 * Every command is `int qb_cmd_NAME(int argc, char **argv)`: argv[0] is the
 * command name, the return value is the process exit code (0 ok, 1 runtime
 * error, 2 usage error). Commands parse their own options with getopt_long,
 * print `--help` to stdout (exit 0), print exactly one JSON document on
 * stdout under --json, and send progress and notices to stderr.
 * Each command lives in its own tui/cli_*.c file.
 */
#ifndef QB_CLI_H
#define QB_CLI_H

#include <stdio.h>

struct qb_cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for `quantbench --help` */
};

/* NULL-terminated table, in the order `quantbench --help` lists them. */
extern const struct qb_cli_command qb_cli_commands[];

int qb_cmd_eval(int argc, char **argv);
int qb_cmd_compare(int argc, char **argv);
int qb_cmd_tokenize(int argc, char **argv);
int qb_cmd_quantize(int argc, char **argv);
int qb_cmd_bench(int argc, char **argv);
int qb_cmd_synth(int argc, char **argv);
int qb_cmd_search(int argc, char **argv);
int qb_cmd_info(int argc, char **argv);
int qb_cmd_pull(int argc, char **argv);
int qb_cmd_list(int argc, char **argv);
int qb_cmd_gpu(int argc, char **argv);
int qb_cmd_doctor(int argc, char **argv);

/* The dashboard; model may be NULL. Returns the exit code. */
int qb_dashboard_main(const char *model, int argc, char **argv);

/* Print "quantbench CMD: <msg>" and "try 'quantbench CMD --help'" to stderr; returns 2. */
int qb_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a non-negative integer option value; returns 0 on success, -1 if not a number
 * in [min, max]. */
int qb_cli_parse_int(const char *s, long min, long max, long *out);

/* The version banner: "quantbench X.Y.Z (build info)". */
void qb_cli_print_version(FILE *f);

#endif /* QB_CLI_H */
