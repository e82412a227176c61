/*
 * telemetry_ring.c - the fixed-capacity history ring behind the dashboard's
 * sparklines (see telemetry.h).
 *
 * Layout: values[capacity] and valid[capacity]; `head` is the slot the next
 * push writes, `len` how many slots hold samples (<= capacity). The oldest
 * sample is at (head - len) mod capacity. A push on a full ring overwrites the
 * oldest, so the ring always holds the newest `capacity` samples.
 */
#include "telemetry.h"

#include <stdlib.h>

struct qb_tel_ring {
    size_t capacity;
    size_t head; /* next slot to write */
    size_t len;  /* filled slots */
    float *values;
    unsigned char *valid;
};

struct qb_tel_ring *qb_tel_ring_create(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    struct qb_tel_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->capacity = capacity;
    r->values = qb_calloc_array(capacity, sizeof *r->values);
    r->valid = qb_calloc_array(capacity, sizeof *r->valid);
    if (!r->values || !r->valid) {
        qb_tel_ring_free(r);
        return NULL;
    }
    return r;
}

void qb_tel_ring_free(struct qb_tel_ring *r)
{
    if (!r)
        return;
    free(r->values);
    free(r->valid);
    free(r);
}

void qb_tel_ring_push(struct qb_tel_ring *r, float value, int valid)
{
    r->values[r->head] = valid ? value : 0.0f;
    r->valid[r->head] = valid ? 1 : 0;
    r->head = (r->head + 1) % r->capacity;
    if (r->len < r->capacity)
        r->len++;
}

size_t qb_tel_ring_len(const struct qb_tel_ring *r)
{
    return r->len;
}

size_t qb_tel_ring_capacity(const struct qb_tel_ring *r)
{
    return r->capacity;
}

size_t qb_tel_ring_copy(const struct qb_tel_ring *r, float *values, unsigned char *valid,
                        size_t max)
{
    size_t n = QB_MIN(max, r->len);
    /* Start n samples before head, wrapping: (head - n) mod capacity. */
    size_t slot = (r->head + r->capacity - n) % r->capacity;
    for (size_t i = 0; i < n; i++) {
        values[i] = r->values[slot];
        valid[i] = r->valid[slot];
        slot = (slot + 1) % r->capacity;
    }
    return n;
}
