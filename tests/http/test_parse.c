/* test_parse.c — strict base64 and multipart/form-data parsing, against hand-written RFC 4648
 * test vectors and hand-built bodies. */
#include "medvlp/http.h"
#include "../test.h"

#include <stdlib.h>
#include <string.h>

static void check_b64_ok(const char *text, const char *want, size_t n_want)
{
    unsigned char *out;
    size_t n;
    mv_error err = {0};
    int status = mv_base64_decode(text, strlen(text), &out, &n, &err);
    CHECK_MSG(status == MV_OK, "decode '%s': %s", text, err.message);
    if (status == MV_OK) {
        CHECK_MSG(n == n_want && !memcmp(out, want, n_want), "decode '%s' gives the RFC 4648 bytes", text);
        free(out);
    }
}

static void check_b64_bad(const char *text)
{
    unsigned char *out = (unsigned char *)"x";
    size_t n;
    mv_error err = {0};
    int status = mv_base64_decode(text, strlen(text), &out, &n, &err);
    CHECK_MSG(status == MV_EINPUT && out == NULL, "'%s' is refused (%s)", text, err.message);
}

static void test_base64(void)
{
    /* RFC 4648 section 10 */
    check_b64_ok("Zg==", "f", 1);
    check_b64_ok("Zm8=", "fo", 2);
    check_b64_ok("Zm9v", "foo", 3);
    check_b64_ok("Zm9vYg==", "foob", 4);
    check_b64_ok("Zm9vYmE=", "fooba", 5);
    check_b64_ok("Zm9vYmFy", "foobar", 6);
    check_b64_ok("+/+/", "\xfb\xff\xbf", 3);
    check_b64_ok("AAEC", "\x00\x01\x02", 3);
    const char *bad[] = {"", "Zg", "Zg=", "Zm9vY", "Zm9v\n", "Zm 9", "Zm9-", "Zm9_", "Z===", "====", "Zg=a",
                         "Z=g=", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v====", "\xc3\xa9" "AAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_b64_bad(bad[i]);
}

static void test_multipart(void)
{
    const char *ct = "multipart/form-data; boundary=XyZ";
    const char body[] = "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"a\"; filename=\"one.png\"\r\n"
                        "Content-Type: image/png\r\n\r\n"
                        "\x89PNG\r\n--X\r\n"
                        "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                        "hello\r\n"
                        "--XyZ--\r\n";
    mv_multipart_part *parts;
    int n_parts;
    mv_error err = {0};
    int status = mv_multipart_parse(ct, body, sizeof body - 1, 16, &parts, &n_parts, &err);
    CHECK_MSG(status == MV_OK, "multipart parses: %s", err.message);
    if (status == MV_OK) {
        CHECK_MSG(n_parts == 2, "two parts (got %d)", n_parts);
        CHECK_MSG(!strcmp(parts[0].name, "a") && !strcmp(parts[0].filename, "one.png") &&
                  !strcmp(parts[0].content_type, "image/png"), "part 0 headers");
        /* the payload holds CRLF and a near-boundary "--X" that must not split it */
        CHECK_MSG(parts[0].size == 9 && !memcmp(parts[0].data, "\x89PNG\r\n--X", 9), "part 0 payload");
        CHECK_MSG(parts[1].size == 5 && !memcmp(parts[1].data, "hello", 5) && !parts[1].filename[0], "part 1");
        mv_multipart_free(parts, n_parts);
    }
    status = mv_multipart_parse("multipart/form-data; boundary=\"XyZ\"", body, sizeof body - 1, 16, &parts,
                                &n_parts, &err);
    CHECK_MSG(status == MV_OK && n_parts == 2, "quoted boundary");
    if (status == MV_OK)
        mv_multipart_free(parts, n_parts);
    status = mv_multipart_parse(ct, body, sizeof body - 1, 1, &parts, &n_parts, &err);
    CHECK_MSG(status == MV_EINPUT, "part limit enforced");

    const struct {
        const char *ct, *body;
    } bad[] = {
        {"multipart/form-data", body},                          /* no boundary */
        {"multipart/form-data; boundary=", body},               /* empty boundary */
        {"multipart/form-data; boundary=Other", body},          /* boundary absent */
        {ct, "--XyZ\r\nContent-Type: a\r\n\r\nno close"},       /* unterminated part */
        {ct, "--XyZ\r\nContent-Type: a"},                       /* unterminated headers */
        {ct, "--XyZ\r\nbroken header\r\n\r\nx\r\n--XyZ--"},     /* header without colon */
        {ct, "--XyZjunk\r\n\r\nx\r\n--XyZ--"},                  /* garbage after delimiter */
        {ct, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        status = mv_multipart_parse(bad[i].ct, bad[i].body, strlen(bad[i].body), 16, &parts, &n_parts, &err);
        CHECK_MSG(status == MV_EINPUT && parts == NULL, "bad multipart %zu refused (%s)", i, err.message);
    }
}

int main(void)
{
    test_base64();
    test_multipart();
    return test_report("http_parse");
}
