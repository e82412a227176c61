/*
 * cli_tokenize.c - placeholder until this command's issue lands; prints what is missing.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench tokenize: not available in this build yet\n");
    return 1;
}
