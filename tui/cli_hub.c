/*
 * cli_hub.c - placeholder until this command's issue lands; prints what is missing.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_search(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench search: not available in this build yet\n");
    return 1;
}

int qb_cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench info: not available in this build yet\n");
    return 1;
}

int qb_cmd_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench pull: not available in this build yet\n");
    return 1;
}

int qb_cmd_list(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench list: not available in this build yet\n");
    return 1;
}
