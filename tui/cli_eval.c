/*
 * cli_eval.c - placeholder for eval and compare until the engine lands.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench eval: not available in this build yet\n");
    return 1;
}

int qb_cmd_compare(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench compare: not available in this build yet\n");
    return 1;
}
