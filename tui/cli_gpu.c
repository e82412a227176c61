/*
 * cli_gpu.c - placeholder until this command's issue lands; prints what is missing.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_gpu(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench gpu: not available in this build yet\n");
    return 1;
}
