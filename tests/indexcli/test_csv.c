/* test_csv.c — the pairs-CSV reader (src/index/csv.c) on the RFC 4180 cases ConVIRT-style tables
 * hit: quoted commas and newlines, doubled quotes, CRLF, a BOM, blank lines, empty fields, and the
 * malformed inputs it must refuse with the line number. */
#include "index/csv.h"
#include "../test.h"

/* Parses text and checks it gives exactly the rows of expected: fields separated by '|', rows by
 * entries of the NULL-terminated array. */
static void check_parse(const char *text, const char *const *expected)
{
    mv_csv csv;
    mv_error err;
    int status = mv_csv_parse(text, strlen(text), "t.csv", &csv, &err);
    CHECK_MSG(status == MV_OK, "%s", err.message);
    if (status)
        return;
    size_t n_expected = 0;
    while (expected[n_expected])
        n_expected++;
    CHECK_INT_EQ(csv.n_rows, n_expected);
    for (size_t r = 0; r < csv.n_rows && r < n_expected; r++) {
        char joined[256] = "";
        for (int f = 0; f < csv.rows[r].n_fields; f++) {
            if (f)
                strcat(joined, "|");
            strcat(joined, csv.rows[r].fields[f]);
        }
        CHECK_MSG(!strcmp(joined, expected[r]), "row %zu: got '%s', expected '%s'", r, joined, expected[r]);
    }
    mv_csv_free(&csv);
}

static void check_refused(const char *text, const char *message)
{
    mv_csv csv;
    mv_error err;
    CHECK_INT_EQ(mv_csv_parse(text, strlen(text), "t.csv", &csv, &err), MV_EINPUT);
    CHECK_STR_CONTAINS(err.message, message);
}

int main(void)
{
    check_parse("a,b,c\n1,2,3\n", (const char *[]){"a|b|c", "1|2|3", NULL});
    check_parse("a,b\r\n1,2\r\n", (const char *[]){"a|b", "1|2", NULL});
    check_parse("a,b\r\n1,2", (const char *[]){"a|b", "1|2", NULL}); /* no final newline */
    check_parse("\xEF\xBB\xBFpath,text\nx.png,y\n", (const char *[]){"path|text", "x.png|y", NULL});
    check_parse("p,t\n\"a,b\",\"say \"\"hi\"\"\"\n", (const char *[]){"p|t", "a,b|say \"hi\"", NULL});
    check_parse("p,t\r\n1,\"two\r\nlines\"\r\n2,x\r\n", (const char *[]){"p|t", "1|two\r\nlines", "2|x", NULL});
    check_parse("p,t\n\n1,2\n\n", (const char *[]){"p|t", "1|2", NULL});         /* blank lines */
    check_parse("p,t,u\n,,\n1,,\n", (const char *[]){"p|t|u", "||", "1||", NULL}); /* empty fields */
    check_parse("p,t\n1,", (const char *[]){"p|t", "1|", NULL});                  /* trailing comma at EOF */
    check_parse("p,t\n\"\",x\n", (const char *[]){"p|t", "|x", NULL});            /* empty quoted field */
    check_parse("p\nab\"c\n", (const char *[]){"p", "ab\"c", NULL});             /* quote inside a bare field */
    check_parse("a\rb,c\n", (const char *[]){"a\rb|c", NULL});                   /* a lone CR is data */

    /* Line numbers count the newlines inside quoted fields. */
    mv_csv csv;
    mv_error err;
    const char *multi = "h\n\"x\ny\"\nz\n";
    CHECK_INT_EQ(mv_csv_parse(multi, strlen(multi), "t.csv", &csv, &err), MV_OK);
    CHECK_INT_EQ(csv.n_rows, 3);
    CHECK_INT_EQ(csv.rows[1].line, 2);
    CHECK_INT_EQ(csv.rows[2].line, 4);
    mv_csv_free(&csv);

    check_refused("p,t\n1,\"open\n2,3\n", "t.csv:2: quoted field never closed");
    check_refused("p,t\n\"a\"b,c\n", "t.csv:2: text after the closing quote");
    CHECK_INT_EQ(mv_csv_parse("", 0, "t.csv", &csv, &err), MV_OK);
    CHECK_INT_EQ(csv.n_rows, 0);
    mv_csv_free(&csv);
    return test_report("indexcli_csv");
}
