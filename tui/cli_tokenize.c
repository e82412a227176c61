/*
 * cli_tokenize.c - `quantbench tokenize MODEL [--json] [--bos] [--decode]`.
 *
 * Encodes stdin (read byte for byte, nothing trimmed) with MODEL's tokenizer.json
 * and prints the ids on one line, or {"ids": [...]} with --json. --bos adds the
 * special tokens the post-processor adds (add_special_tokens=True). --decode reads
 * whitespace-separated ids from stdin and prints their text exactly (no newline
 * added), or {"text": "..."} with --json. MODEL is a checkpoint directory holding
 * tokenizer.json or the path of a tokenizer.json file.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qb_common.h"
#include "gguf_vocab.h"
#include "tokenizer.h"

#define STDIN_MAX_BYTES ((size_t)1 << 32)

static void print_help(void)
{
    printf("usage: quantbench tokenize MODEL [--json] [--bos] [--decode]\n\n"
           "Token ids of stdin, exactly as Hugging Face `tokenizers` computes them.\n\n"
           "  MODEL       checkpoint directory with tokenizer.json, a tokenizer.json file\n"
           "              or a GGUF file (its tokenizer.ggml.* metadata)\n"
           "  --bos       add the special tokens the post-processor adds (BOS)\n"
           "  --decode    read whitespace-separated ids from stdin and print their text\n"
           "  --json      print {\"ids\": [...]} (or {\"text\": ...} with --decode)\n"
           "  -h, --help  this help\n\n"
           "stdin is read byte for byte: spaces and newlines are part of the text.\n"
           "example: printf 'Hello world' | quantbench tokenize tests/data/ref-llama-10m\n");
}

static enum qb_status read_stdin(char **out, size_t *len, struct qb_err *err)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading stdin");
    for (;;) {
        if (n == cap) {
            char *p = cap < STDIN_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return qb_err_set(err, QB_ERR_NOMEM, "stdin is too large to tokenize");
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return qb_err_set(err, QB_ERR_IO, "cannot read stdin: %s", strerror(errno));
    }
    *out = buf;
    *len = n;
    return QB_OK;
}

static enum qb_status load_tokenizer(const char *model, struct qb_tokenizer **tok,
                                     struct qb_err *err)
{
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char *path = qb_asprintf("%s/tokenizer.json", model);
        if (!path)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        enum qb_status st = qb_tok_load_hf(path, tok, err);
        free(path);
        return st;
    }
    size_t n = strlen(model);
    if (n > 5 && strcmp(model + n - 5, ".gguf") == 0)
        return qb_gguf_vocab_load_file(model, tok, err);
    return qb_tok_load_hf(model, tok, err);
}

static enum qb_status parse_ids(const char *text, size_t len, int32_t n_vocab, int32_t **ids,
                                size_t *n, struct qb_err *err)
{
    size_t cap = 64, count = 0;
    int32_t *v = malloc(cap * sizeof(*v));
    if (!v)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < len;) {
        if (strchr(" \t\r\n\v\f", text[i]) && text[i]) {
            i++;
            continue;
        }
        size_t j = i;
        long long val = 0;
        while (j < len && text[j] >= '0' && text[j] <= '9' && val <= INT32_MAX)
            val = val * 10 + (text[j++] - '0');
        int ends = j == len || (text[j] && strchr(" \t\r\n\v\f", text[j]));
        if (j == i || !ends || val >= n_vocab) {
            size_t k = i;
            while (k < len && k - i < 24 && text[k] && !strchr(" \t\r\n\v\f", text[k]))
                k++;
            free(v);
            if (j > i && ends)
                return qb_err_set(err, QB_ERR_RANGE,
                                  "token id %.*s (input token %zu) is outside the vocabulary "
                                  "(0..%d)",
                                  (int)(k - i), text + i, count + 1, n_vocab - 1);
            return qb_err_set(err, QB_ERR_FORMAT,
                              "'%.*s' (input token %zu) is not a token id (expected "
                              "non-negative integers separated by whitespace)",
                              (int)(k - i), text + i, count + 1);
        }
        if (count == cap) {
            int32_t *p = qb_realloc_array(v, cap * 2, sizeof(*v));
            if (!p) {
                free(v);
                return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            }
            v = p;
            cap *= 2;
        }
        v[count++] = (int32_t)val;
        i = j;
    }
    *ids = v;
    *n = count;
    return QB_OK;
}

static int print_ids(const int32_t *ids, size_t n, int json)
{
    if (!json) {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        return 0;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "ids");
    for (size_t i = 0; arr && i < n; i++) {
        if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i])))
            arr = NULL;
    }
    char *s = arr ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "quantbench: out of memory printing JSON\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static int print_text(const char *text, size_t len, int json)
{
    if (!json) {
        fwrite(text, 1, len, stdout);
        return 0;
    }
    cJSON *root = cJSON_CreateObject();
    char *s = cJSON_AddStringToObject(root, "text", text) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "quantbench: out of memory printing JSON\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

int qb_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"bos", no_argument, NULL, 'b'},
        {"decode", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, bos = 0, decode = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'b':
            bos = 1;
            break;
        case 'd':
            decode = 1;
            break;
        case 'h':
            print_help();
            return 0;
        default:
            return qb_cli_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return qb_cli_usage_error("tokenize",
                                  optind >= argc ? "missing MODEL" : "expected one MODEL argument");
    if (decode && bos)
        return qb_cli_usage_error("tokenize", "--bos has no meaning with --decode");

    struct qb_err err;
    qb_err_clear(&err);
    struct qb_tokenizer *tok = NULL;
    char *input = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0, text_len = 0;
    int rc = 1;
    enum qb_status st = load_tokenizer(argv[optind], &tok, &err);
    if (!st)
        st = read_stdin(&input, &len, &err);
    if (!st && decode) {
        st = parse_ids(input, len, qb_tok_vocab_size(tok), &ids, &n_ids, &err);
        if (!st)
            st = qb_tok_decode(tok, ids, n_ids, &text, &text_len, &err);
        if (!st)
            rc = print_text(text, text_len, json);
    } else if (!st) {
        st = qb_tok_encode(tok, input, len, bos, &ids, &n_ids, &err);
        if (!st)
            rc = print_ids(ids, n_ids, json);
    }
    if (st) {
        qb_err_print(&err);
        rc = qb_status_exit_code(st) == 2 ? 1 : qb_status_exit_code(st);
    }
    if (!rc && fflush(stdout) != 0) {
        fprintf(stderr, "quantbench: cannot write stdout: %s\n", strerror(errno));
        rc = 1;
    }
    free(text);
    free(ids);
    free(input);
    qb_tok_free(tok);
    return rc;
}
