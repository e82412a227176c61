/*
 * cli_progress.h - how foreground CLI commands show a job's progress.
 *
 * A listener for struct qb_progress that renders, on stderr, either a
 * one-line progress bar (only when stderr is a terminal; redrawn at most
 * 10 times a second) or, with --progress-json, one JSON line per publish
 * (throttled the same way, plus every stage change and the finish).
 */
#ifndef QB_CLI_PROGRESS_H
#define QB_CLI_PROGRESS_H

#include "progress.h"

enum qb_cli_progress_mode {
    QB_CLI_PROGRESS_AUTO = 0, /* bar when stderr is a terminal, else nothing */
    QB_CLI_PROGRESS_JSON,
    QB_CLI_PROGRESS_NONE,
};

struct qb_cli_progress {
    enum qb_cli_progress_mode mode;
    int is_tty;
    double last_draw;
    uint64_t last_seq;
    char last_stage[64];
    int bar_visible;
};

/* Attach a renderer to p (the struct must outlive p's use). */
void qb_cli_progress_attach(struct qb_cli_progress *r, enum qb_cli_progress_mode mode,
                            struct qb_progress *p);
/* Erase the bar line, if one is drawn (call before printing results). */
void qb_cli_progress_clear(struct qb_cli_progress *r);

#endif /* QB_CLI_PROGRESS_H */
