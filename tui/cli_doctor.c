/*
 * cli_doctor.c - placeholder until this command's issue lands; prints what is missing.
 */
#include <stdio.h>

#include "cli.h"

int qb_cmd_doctor(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench doctor: not available in this build yet\n");
    return 1;
}
