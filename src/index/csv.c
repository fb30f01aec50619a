/* csv.c — the CSV reader of `medvlp index build --pairs` (see csv.h for the accepted syntax). */
#include "index/csv.h"

#include <stdlib.h>
#include <string.h>

/* Growable arrays of the parse: field pointers, and rows with the index of their first field (the
 * field array may still move, so rows get their pointers at the end). */
typedef struct csv_builder {
    char **fields;
    size_t n_fields, cap_fields;
    mv_csv_row *rows;
    size_t *row_first;
    size_t n_rows, cap_rows, cap_row_first;
} csv_builder;

static int grow(void **array, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 1;
    size_t cap_new = *cap ? *cap * 2 : 64;
    while (cap_new < need)
        cap_new *= 2;
    void *grown = realloc(*array, cap_new * elem_size);
    if (!grown)
        return 0;
    *array = grown;
    *cap = cap_new;
    return 1;
}

/* Ends the current record, whose fields start at index first of b->fields. */
static int end_record(csv_builder *b, size_t first, long line)
{
    /* A blank line is one empty field: no record. */
    if (b->n_fields - first == 1 && !b->fields[first][0]) {
        b->n_fields = first;
        return 1;
    }
    if (!grow((void **)&b->rows, &b->cap_rows, b->n_rows + 1, sizeof *b->rows) ||
        !grow((void **)&b->row_first, &b->cap_row_first, b->n_rows + 1, sizeof *b->row_first))
        return 0;
    b->row_first[b->n_rows] = first;
    b->rows[b->n_rows++] = (mv_csv_row){.n_fields = (int)(b->n_fields - first), .line = line};
    return 1;
}

int mv_csv_parse(const char *text, size_t n_text, const char *what, mv_csv *out, mv_error *err)
{
    memset(out, 0, sizeof *out);
    csv_builder b = {0};
    /* Unquoting only shrinks a field, and each field adds one NUL: 2n+1 bytes hold them all. */
    char *storage = malloc(2 * n_text + 1), *write = storage;
    size_t i = 0, record_first = 0;
    long line = 1, record_line = 1;
    int status = MV_OK;
    if (!storage)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory for %zu bytes of CSV", what, n_text);
    if (n_text >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < n_text) {
        if (!grow((void **)&b.fields, &b.cap_fields, b.n_fields + 1, sizeof *b.fields)) {
            status = mv_fail(err, MV_ENOMEM, "%s: out of memory", what);
            break;
        }
        b.fields[b.n_fields++] = write;
        if (text[i] == '"') {
            long quote_line = line;
            for (i++;; i++) {
                if (i >= n_text) {
                    status = mv_fail(err, MV_EINPUT, "%s:%ld: quoted field never closed", what, quote_line);
                    break;
                }
                if (text[i] == '"') {
                    if (i + 1 < n_text && text[i + 1] == '"') {
                        *write++ = '"';
                        i++;
                        continue;
                    }
                    i++;
                    break;
                }
                line += text[i] == '\n';
                *write++ = text[i];
            }
            if (status)
                break;
            if (i < n_text && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n_text && text[i + 1] == '\n')) {
                status = mv_fail(err, MV_EINPUT, "%s:%ld: text after the closing quote of a field", what, line);
                break;
            }
        } else {
            while (i < n_text && text[i] != ',' && text[i] != '\n' &&
                   !(text[i] == '\r' && i + 1 < n_text && text[i + 1] == '\n'))
                *write++ = text[i++];
        }
        *write++ = '\0';
        if (i < n_text && text[i] == ',') {
            i++;
            if (i == n_text && !grow((void **)&b.fields, &b.cap_fields, b.n_fields + 1, sizeof *b.fields)) {
                status = mv_fail(err, MV_ENOMEM, "%s: out of memory", what);
                break;
            }
            if (i == n_text) { /* "a,b," at the very end: the last field is empty */
                b.fields[b.n_fields++] = write;
                *write++ = '\0';
            }
            continue;
        }
        /* End of record: CRLF, LF or the end of the text. */
        i += i < n_text && text[i] == '\r' ? 2 : i < n_text ? 1 : 0;
        if (!end_record(&b, record_first, record_line)) {
            status = mv_fail(err, MV_ENOMEM, "%s: out of memory", what);
            break;
        }
        record_first = b.n_fields;
        record_line = ++line;
    }
    if (!status && b.n_fields > record_first && !end_record(&b, record_first, record_line))
        status = mv_fail(err, MV_ENOMEM, "%s: out of memory", what);
    if (status) {
        free(storage);
        free(b.fields);
        free(b.rows);
        free(b.row_first);
        return status;
    }
    for (size_t r = 0; r < b.n_rows; r++)
        b.rows[r].fields = b.fields + b.row_first[r];
    free(b.row_first);
    *out = (mv_csv){.rows = b.rows, .n_rows = b.n_rows, .storage = storage, .field_storage = b.fields};
    return MV_OK;
}

void mv_csv_free(mv_csv *csv)
{
    free(csv->storage);
    free(csv->field_storage);
    free(csv->rows);
    memset(csv, 0, sizeof *csv);
}
