/*
 * dashboard.c - placeholder entry for the ncurses dashboard (issue 8).
 */
#include <stdio.h>

#include "cli.h"

int qb_dashboard_main(const char *model, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "quantbench: the dashboard is not in this build yet%s%s; "
                    "use the CLI commands (quantbench --help)\n",
            model ? " for " : "", model ? model : "");
    return 1;
}
