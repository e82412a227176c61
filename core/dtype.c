/*
 * dtype.c - names and sizes of checkpoint dtypes (see dtype.h).
 */
#include "dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[QB_DTYPE_COUNT] = {
    [QB_DTYPE_F32] = {"F32", 4},     [QB_DTYPE_F16] = {"F16", 2},
    [QB_DTYPE_BF16] = {"BF16", 2},   [QB_DTYPE_F64] = {"F64", 8},
    [QB_DTYPE_I8] = {"I8", 1},       [QB_DTYPE_U8] = {"U8", 1},
    [QB_DTYPE_I16] = {"I16", 2},     [QB_DTYPE_I32] = {"I32", 4},
    [QB_DTYPE_I64] = {"I64", 8},     [QB_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [QB_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [QB_DTYPE_BOOL] = {"BOOL", 1},
};

size_t qb_dtype_size(enum qb_dtype dt)
{
    if ((unsigned)dt >= QB_DTYPE_COUNT)
        return 0;
    return dtype_table[dt].size;
}

const char *qb_dtype_name(enum qb_dtype dt)
{
    if ((unsigned)dt >= QB_DTYPE_COUNT)
        return "?";
    return dtype_table[dt].name;
}

int qb_dtype_parse(const char *name, enum qb_dtype *out)
{
    for (int i = 0; i < QB_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (enum qb_dtype)i;
            return 0;
        }
    }
    return -1;
}
