/*
 * main.c - the quantbench entry point.
 *
 * `quantbench COMMAND ...` runs a CLI command from the table in cli_common.c;
 * `quantbench` alone, or with an existing directory or an ORG/NAME[@REV]
 * model id, opens the dashboard. Anything else is a usage error (exit 2).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void print_help(void)
{
    printf("quantbench - quantize LLMs and see what each method costs and buys\n\n"
           "usage: quantbench [MODEL]            open the dashboard\n"
           "       quantbench COMMAND [OPTIONS]  run one command\n"
           "       quantbench COMMAND --help     options of a command\n\n"
           "commands:\n");
    for (const struct qb_cli_command *c = qb_cli_commands; c->name; c++)
        printf("  %-10s %s\n", c->name, c->summary);
    printf("\nMODEL is a checkpoint directory (Hugging Face layout) or ORG/NAME[@REV].\n"
           "See quantbench(1) for schemes, environment and examples.\n");
}

/* ORG/NAME[@REV]: exactly one '/', both parts non-empty, no spaces. */
static int looks_like_repo_id(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || strchr(slash + 1, '/') || slash[1] == '\0')
        return 0;
    if (s[0] == '-' || s[0] == '.')
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p == ' ' || *p == '\t')
            return 0;
    }
    return 1;
}

/* Dashboard options that may come without a MODEL (`quantbench --theme light`). */
static int is_dashboard_option(const char *arg)
{
    static const char *const opts[] = {"--theme", "--models-dir", "--data", "--calib", "--ctx",
                                       "--chunks", "--backend", "--ascii"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        size_t n = strlen(opts[i]);
        if (strncmp(arg, opts[i], n) == 0 && (arg[n] == '\0' || arg[n] == '='))
            return 1;
    }
    return 0;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return qb_dashboard_main(NULL, argc, argv);
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        qb_cli_print_version(stdout);
        return 0;
    }
    for (const struct qb_cli_command *c = qb_cli_commands; c->name; c++) {
        if (strcmp(first, c->name) == 0)
            return c->run(argc - 1, argv + 1);
    }
    if (first[0] != '-' && (is_directory(first) || looks_like_repo_id(first)))
        return qb_dashboard_main(first, argc - 1, argv + 1);
    if (is_dashboard_option(first))
        return qb_dashboard_main(NULL, argc, argv);
    fprintf(stderr, "quantbench: '%s' is not a command, a model directory or ORG/NAME\n"
                    "try 'quantbench --help'\n", first);
    return 2;
}
