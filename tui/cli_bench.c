/*
 * cli_bench.c - placeholder until this command's issue lands; prints what is missing.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench bench: not available in this build yet\n");
    return 1;
}

int qb_cmd_synth(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench synth: not available in this build yet\n");
    return 1;
}
