/*
 * test_hub_parse.c - the Hub client's pure parts, no server: SHA-256 against
 * FIPS vectors and Python's hashlib, untrusted file names, repo ids and
 * revisions, include/exclude selection, the Link header, the JSON parsers on
 * good and corrupt input (every prefix of a real-shaped document, wrong
 * types, huge numbers), config.json summaries, the engine verdict and the
 * options read from the environment.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "hub/hub.h"

static void sha_hex(const void *p, size_t n, size_t chunk, char hex[65])
{
    struct qb_sha256 s;
    qb_sha256_init(&s);
    for (size_t off = 0; off < n; off += chunk)
        qb_sha256_update(&s, (const char *)p + off, QB_MIN(chunk, n - off));
    qb_sha256_final_hex(&s, hex);
}

Test(hub_sha256, fips_vectors_and_hashlib)
{
    char hex[65];
    sha_hex("", 0, 1, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, 1, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), 7, hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    static const size_t chunks[] = {1, 63, 64, 65, 4096, 1000000};
    for (size_t i = 0; i < QB_ARRAY_LEN(chunks); i++) {
        sha_hex(a, 1000000, chunks[i], hex);
        cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                         "chunk %zu", chunks[i]);
    }
    free(a);
    unsigned char b[256 * 41];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)(i & 255);
    sha_hex(b, sizeof b, 100, hex); /* hashlib.sha256(bytes(range(256))*41) */
    cr_assert_str_eq(hex, "ab6b9b1d71dcfec981b828ca8b9d280b6cf90fb42d788542331933d444aed8cf");
}

Test(hub_names, untrusted_paths)
{
    static const char *const ok[] = {"config.json",    "sub/dir/x.json",       "a..b",
                                     ".gitattributes", "original/params.json", "x/.hidden"};
    static const char *const bad[] = {"",         "/etc/passwd", "../../evil", "..", ".",
                                      "a/../b",   "a/./b",       "a//b",       "a/", "a\\b",
                                      "..\\evil", "a\nb",        "x/..",       "./x"};
    for (size_t i = 0; i < QB_ARRAY_LEN(ok); i++)
        cr_assert(qb_hub_path_is_safe(ok[i]), "%s", ok[i]);
    for (size_t i = 0; i < QB_ARRAY_LEN(bad); i++)
        cr_assert_not(qb_hub_path_is_safe(bad[i]), "'%s'", bad[i]);
}

Test(hub_names, repo_arguments)
{
    char *repo, *rev;
    struct qb_err err;
    cr_assert_eq(qb_hub_parse_repo_arg("Qwen/Qwen3-8B", &repo, &rev, &err), QB_OK);
    cr_assert_str_eq(repo, "Qwen/Qwen3-8B");
    cr_assert_null(rev);
    free(repo);
    cr_assert_eq(qb_hub_parse_repo_arg("meta-llama/Llama-3.1-8B@refs/pr/1", &repo, &rev, &err),
                 QB_OK);
    cr_assert_str_eq(repo, "meta-llama/Llama-3.1-8B");
    cr_assert_str_eq(rev, "refs/pr/1");
    free(repo);
    free(rev);
    static const char *const bad[] = {"noslash", "a/b/c",  "/b",          "a/",      "../x",
                                      "a/..",    "a/b@",   "a/b@../../x", "a/b@-rf", "a b/c",
                                      "a/b c",   "a--b/c", "a/b@x y",     ".a/b",    "a/b."};
    for (size_t i = 0; i < QB_ARRAY_LEN(bad); i++)
        cr_assert_eq(qb_hub_parse_repo_arg(bad[i], &repo, &rev, &err), QB_ERR_USAGE, "'%s'",
                     bad[i]);
}

Test(hub_select, default_excludes_and_globs)
{
    struct qb_hub_pull_opts none = {0};
    cr_assert(qb_hub_file_selected(&none, "model-00001-of-00002.safetensors"));
    cr_assert(qb_hub_file_selected(&none, "model.safetensors.index.json"));
    cr_assert(qb_hub_file_selected(&none, "tokenizer.model"));
    cr_assert(qb_hub_file_selected(&none, "quantize_config.json"));
    static const char *const skipped[] = {"pytorch_model.bin",
                                          "x.pt",
                                          "y.pth",
                                          "tf_model.h5",
                                          "flax_model.msgpack",
                                          "onnx/model.onnx",
                                          "model-q4.gguf",
                                          "original/consolidated.00.pth",
                                          "original/params.json"};
    for (size_t i = 0; i < QB_ARRAY_LEN(skipped); i++)
        cr_assert_not(qb_hub_file_selected(&none, skipped[i]), "%s", skipped[i]);
    cr_assert_not(qb_hub_file_selected(NULL, "a.bin"));
    const char *inc[] = {"*.gguf"};
    struct qb_hub_pull_opts o = {.include = inc, .n_include = 1};
    cr_assert(qb_hub_file_selected(&o, "sub/model-q4.gguf"));
    cr_assert_not(qb_hub_file_selected(&o, "config.json"));
    const char *exc[] = {"tokenizer*", "docs/"};
    struct qb_hub_pull_opts e = {.exclude = exc, .n_exclude = 2};
    cr_assert_not(qb_hub_file_selected(&e, "tokenizer.json"));
    cr_assert_not(qb_hub_file_selected(&e, "docs/a/b.md"));
    cr_assert(qb_hub_file_selected(&e, "config.json"));
    struct qb_hub_pull_opts all = {.no_default_excludes = 1};
    cr_assert(qb_hub_file_selected(&all, "pytorch_model.bin"));
}

Test(hub_parse, link_header)
{
    char *u = qb_hub_link_next("<https://huggingface.co/api/models?limit=10&cursor=eyJ%3D>; "
                               "rel=\"next\"");
    cr_assert_str_eq(u, "https://huggingface.co/api/models?limit=10&cursor=eyJ%3D");
    free(u);
    u = qb_hub_link_next("<http://h/p?c=1>; rel=\"prev\", <http://h/p?c=3>; rel=\"next\"");
    cr_assert_str_eq(u, "http://h/p?c=3");
    free(u);
    cr_assert_null(qb_hub_link_next("<http://h/p?c=1>; rel=\"prev\""));
    cr_assert_null(qb_hub_link_next("<file:///etc/passwd>; rel=\"next\""));
    cr_assert_null(qb_hub_link_next("<http://h/p"));
    cr_assert_null(qb_hub_link_next(""));
    cr_assert_null(qb_hub_link_next(NULL));
    cr_assert_null(qb_hub_link_next("<>; rel=\"next\""));
}

static const char k_info[] =
    "{\"_id\":\"621ffdc036468d709f17434d\",\"id\":\"org/m\",\"modelId\":\"org/m\","
    "\"sha\":\"f27b190eeac4c2302d24068eabf5e9d6044389ae\",\"gated\":\"auto\",\"downloads\":12,"
    "\"likes\":3,\"library_name\":\"transformers\",\"pipeline_tag\":\"text-generation\","
    "\"tags\":[\"region:us\",\"license:mit\"],\"lastModified\":\"2024-01-01T00:00:00.000Z\","
    "\"config\":{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\"},"
    "\"safetensors\":{\"parameters\":{\"F32\":100,\"BF16\":5000},\"total\":5100},"
    "\"siblings\":[{\"rfilename\":\"config.json\",\"size\":700,\"blobId\":"
    "\"1743c38c2ee293ff84511252c98af6affdf2631d\"},{\"rfilename\":\"model.safetensors\","
    "\"size\":134,\"lfs\":{\"sha256\":"
    "\"27f0a18a7d062d26ac18a0374103c3d91a2414e104c10c68942487213385439c\",\"size\":10200,"
    "\"pointerSize\":134}},{\"rfilename\":7},{\"nope\":1}]}";

Test(hub_parse, model_info)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    memset(&m, 0, sizeof m);
    qb_hub_model_info_clear(&m);
    cr_assert_eq(qb_hub_parse_model_info(k_info, strlen(k_info), &m, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(m.id, "org/m");
    cr_assert_str_eq(m.gated, "auto");
    cr_assert_str_eq(m.license, "mit", "from the license: tag when cardData has none");
    cr_assert_eq(m.parameters, 5100);
    cr_assert_str_eq(m.param_dtype, "BF16");
    cr_assert_eq(m.files.n, 2, "entries without a string rfilename are skipped");
    cr_assert_eq(m.files.items[1].size, 10200, "lfs.size is the real size");
    cr_assert_str_eq(m.files.items[1].lfs_sha256,
                     "27f0a18a7d062d26ac18a0374103c3d91a2414e104c10c68942487213385439c");
    cr_assert_eq(m.total_size, 10900);
    cr_assert_str_eq(m.config.model_type, "qwen3");
    qb_hub_model_info_clear(&m);
}

Test(hub_parse, every_prefix_of_a_document_is_rejected_cleanly)
{
    struct qb_err err;
    size_t n = strlen(k_info);
    for (size_t len = 0; len < n; len++) {
        struct qb_hub_model_info m;
        memset(&m, 0, sizeof m);
        cr_assert_eq(qb_hub_parse_model_info(k_info, len, &m, &err), QB_ERR_FORMAT, "len %zu", len);
        qb_hub_model_info_clear(&m);
        struct qb_hub_search_result r = {0};
        cr_assert_eq(qb_hub_parse_search_page(k_info, len, &r, &err), QB_ERR_FORMAT);
        qb_hub_search_result_clear(&r);
    }
}

Test(hub_parse, corrupt_and_oddly_typed_json)
{
    struct qb_err err;
    struct qb_hub_search_result r = {0};
    struct qb_hub_file_list fl = {0};
    struct qb_hub_text_rows rows = {0};
    struct qb_hub_model_info m;
    int64_t total;
    memset(&m, 0, sizeof m);
    static const char *const garbage[] = {
        "", "nul", "{", "[", "\"str\"", "{\"a\":}", "[1,]", "\xff\xfe", "[{\"id\":\"x\"}"};
    for (size_t i = 0; i < QB_ARRAY_LEN(garbage); i++) {
        const char *g = garbage[i];
        cr_assert_eq(qb_hub_parse_search_page(g, strlen(g), &r, &err), QB_ERR_FORMAT, "%s", g);
        cr_assert_eq(qb_hub_parse_tree_page(g, strlen(g), &fl, &err), QB_ERR_FORMAT, "%s", g);
        cr_assert_eq(qb_hub_parse_rows_page(g, strlen(g), "text", &rows, &total, &err),
                     QB_ERR_FORMAT);
        cr_assert_eq(qb_hub_parse_model_info(g, strlen(g), &m, &err), QB_ERR_FORMAT);
        qb_hub_model_info_clear(&m);
    }
    cr_assert_eq(qb_hub_parse_search_page("{}", 2, &r, &err), QB_ERR_FORMAT, "not an array");
    cr_assert_eq(qb_hub_parse_model_info("[]", 2, &m, &err), QB_ERR_FORMAT, "not an object");
    cr_assert_eq(qb_hub_parse_model_info("{\"sha\":\"../../x\"}", 17, &m, &err), QB_ERR_FORMAT);
    qb_hub_model_info_clear(&m);
    /* wrong types and absurd numbers read as absent, never as huge sizes */
    const char *odd = "[{\"id\":\"a/b\",\"downloads\":-5,\"likes\":1e300,\"gated\":3,"
                      "\"safetensors\":{\"total\":\"many\"},\"lastModified\":[],"
                      "\"library_name\":null},{\"id\":7},\"x\",null,{\"id\":\"c/d\","
                      "\"gated\":true,\"downloads\":1.5e3}]";
    cr_assert_eq(qb_hub_parse_search_page(odd, strlen(odd), &r, &err), QB_OK);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.items[0].downloads, -1);
    cr_assert_eq(r.items[0].likes, -1);
    cr_assert_null(r.items[0].gated);
    cr_assert_eq(r.items[0].parameters, -1);
    cr_assert_null(r.items[0].last_modified);
    cr_assert_null(r.items[0].library);
    cr_assert_str_eq(r.items[1].gated, "true");
    cr_assert_eq(r.items[1].downloads, 1500);
    qb_hub_search_result_clear(&r);
    const char *tree = "[{\"type\":\"directory\",\"path\":\"sub\"},{\"type\":\"file\",\"path\":"
                       "\"a\",\"size\":-1,\"lfs\":{\"oid\":\"not-hex\"}},{\"type\":\"file\"},"
                       "{\"type\":\"file\",\"path\":\"b\",\"size\":9e99}]";
    cr_assert_eq(qb_hub_parse_tree_page(tree, strlen(tree), &fl, &err), QB_OK);
    cr_assert_eq(fl.n, 2);
    cr_assert_eq(fl.items[0].size, -1);
    cr_assert_null(fl.items[0].lfs_sha256, "a malformed lfs oid is dropped");
    cr_assert_eq(fl.items[1].size, -1);
    struct qb_hub_model_info tmp = {.files = fl};
    qb_hub_model_info_clear(&tmp);
    cr_assert_eq(qb_hub_parse_rows_page("{\"rows\":{}}", 11, "text", &rows, &total, &err),
                 QB_ERR_FORMAT);
    const char *badcol = "{\"rows\":[{\"row\":{\"text\":1}}]}";
    cr_assert_eq(qb_hub_parse_rows_page(badcol, strlen(badcol), "text", &rows, &total, &err),
                 QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "'text'"));
    qb_hub_text_rows_clear(&rows);
    const char *good = "{\"rows\":[{\"row_idx\":0,\"row\":{\"text\":\"a\\n\"}},{\"row\":{\"text\":"
                       "\"\"}}],\"num_rows_total\":4358}";
    cr_assert_eq(qb_hub_parse_rows_page(good, strlen(good), "text", &rows, &total, &err), QB_OK);
    cr_assert_eq(rows.n, 2);
    cr_assert_str_eq(rows.rows[0], "a\n");
    cr_assert_eq(total, 4358);
    qb_hub_text_rows_clear(&rows);
}

Test(hub_parse, config_summary_and_engine_verdict)
{
    struct qb_hub_config_summary c;
    struct qb_err err;
    char *why = NULL;
    memset(&c, 0, sizeof c);
    const char *mistral = "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\","
                          "\"num_hidden_layers\":32,\"hidden_size\":4096,\"num_attention_heads\":"
                          "32,\"num_key_value_heads\":8,\"vocab_size\":32768,"
                          "\"max_position_embeddings\":32768}";
    cr_assert_eq(qb_hub_parse_config(mistral, strlen(mistral), &c, &err), QB_OK);
    cr_assert_eq(c.layers, 32);
    cr_assert_eq(c.kv_heads, 8);
    cr_assert_eq(c.context, 32768);
    cr_assert(qb_hub_engine_verdict(&c, &why));
    cr_assert_str_eq(why, "mistral (dense) is supported");
    free(why);
    /* no num_key_value_heads: multi-head attention, kv = heads; text_config nesting */
    const char *nested = "{\"model_type\":\"llama\",\"text_config\":{\"num_hidden_layers\":2,"
                         "\"hidden_size\":64,\"num_attention_heads\":4,\"vocab_size\":10}}";
    cr_assert_eq(qb_hub_parse_config(nested, strlen(nested), &c, &err), QB_OK);
    cr_assert_eq(c.layers, 2);
    cr_assert_eq(c.kv_heads, 4);
    cr_assert_eq(c.context, -1);
    cr_assert_null(c.architecture);
    struct {
        const char *json;
        int ok;
        const char *why;
    } cases[] = {
        {"{\"model_type\":\"llama\"}", 1, "llama (dense) is supported"},
        {"{\"model_type\":\"qwen2\"}", 1, "qwen2 (dense) is supported"},
        {"{\"model_type\":\"qwen3\"}", 1, "qwen3 (dense) is supported"},
        {"{\"model_type\":\"gpt_oss\"}", 0, "MoE (gpt-oss) not supported yet"},
        {"{\"model_type\":\"mixtral\"}", 0, "MoE (mixtral) not supported yet"},
        {"{\"model_type\":\"qwen3_moe\"}", 0, "MoE (qwen3-moe) not supported yet"},
        {"{\"model_type\":\"deepseek_v3\"}", 0, "MoE (deepseek-v3) not supported yet"},
        {"{\"model_type\":\"llama\",\"num_local_experts\":8}", 0, "MoE (llama) not supported yet"},
        {"{\"model_type\":\"llama\",\"quantization_config\":{\"quant_method\":\"gptq\"}}", 0,
         "already quantized (gptq): quantbench starts from unquantized weights"},
        {"{\"model_type\":\"gpt2\"}", 0,
         "model_type 'gpt2' is not supported yet (supported: llama, mistral, qwen2, qwen3)"},
        {"{}", 0, "no model_type in config.json: cannot tell the architecture"},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(cases); i++) {
        cr_assert_eq(qb_hub_parse_config(cases[i].json, strlen(cases[i].json), &c, &err), QB_OK);
        cr_assert_eq(qb_hub_engine_verdict(&c, &why), cases[i].ok, "%s", cases[i].json);
        cr_assert_str_eq(why, cases[i].why);
        free(why);
    }
    cr_assert_eq(qb_hub_parse_config("[1]", 3, &c, &err), QB_ERR_FORMAT);
    qb_hub_config_summary_clear(&c);
}

Test(hub_env, options_follow_huggingface_hub)
{
    struct qb_hub_opts o;
    struct qb_err err;
    char dir[] = "/tmp/qbhubenv.XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    static const char *const clear[] = {
        "HF_HOME",        "HF_HUB_CACHE",           "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",       "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
        "HF_ENDPOINT",    "HF_HUB_OFFLINE",         "TRANSFORMERS_OFFLINE",
        "XDG_CACHE_HOME", "HF_DATASETS_SERVER"};
    for (size_t i = 0; i < QB_ARRAY_LEN(clear); i++)
        unsetenv(clear[i]);
    setenv("HOME", dir, 1);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    snprintf(path, sizeof path, "%s/.cache/huggingface/hub", dir);
    cr_assert_str_eq(o.hub_cache, path);
    snprintf(path, sizeof path, "%s/.cache/quantbench/datasets", dir);
    cr_assert_str_eq(o.data_cache, path);
    cr_assert_str_eq(o.endpoint, "https://huggingface.co");
    cr_assert_null(o.token);
    cr_assert_not(o.offline);
    qb_hub_opts_clear(&o);

    setenv("XDG_CACHE_HOME", "/x", 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    setenv("HF_HUB_OFFLINE", "yes", 1);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_str_eq(o.hub_cache, "/x/huggingface/hub");
    cr_assert_str_eq(o.endpoint, "http://127.0.0.1:9", "trailing '/' stripped");
    cr_assert(o.offline);
    qb_hub_opts_clear(&o);

    setenv("HF_HOME", dir, 1);
    snprintf(path, sizeof path, "%s/token", dir);
    FILE *f = fopen(path, "w");
    fputs("  hf_from_file\r\n", f);
    fclose(f);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_str_eq(o.token, "hf_from_file");
    snprintf(path, sizeof path, "%s/hub", dir);
    cr_assert_str_eq(o.hub_cache, path);
    qb_hub_opts_clear(&o);

    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_str_eq(o.hub_cache, "/legacy");
    cr_assert_str_eq(o.token, "hf_legacy");
    qb_hub_opts_clear(&o);
    setenv("HF_HUB_CACHE", "/new", 1);
    setenv("HF_TOKEN", "hf_env", 1);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_str_eq(o.hub_cache, "/new");
    cr_assert_str_eq(o.token, "hf_env");
    struct qb_hub *hub = NULL;
    cr_assert_eq(qb_hub_open(&o, &hub, &err), QB_OK);
    cr_assert(qb_hub_has_token(hub));
    cr_assert_str_eq(qb_hub_cache_dir(hub), "/new");
    qb_hub_free(hub);
    qb_hub_opts_clear(&o);

    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    snprintf(path, sizeof path, "%s/other-token", dir);
    f = fopen(path, "w");
    fputs("hf_path\n", f);
    fclose(f);
    setenv("HF_TOKEN_PATH", path, 1);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_str_eq(o.token, "hf_path");
    qb_hub_opts_clear(&o);
    f = fopen(path, "w");
    fputs(" \n", f);
    fclose(f);
    cr_assert_eq(qb_hub_opts_from_env(&o, &err), QB_OK);
    cr_assert_null(o.token, "an empty token file means no token");
    qb_hub_opts_clear(&o);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
