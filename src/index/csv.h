/* csv.h — RFC 4180 CSV parsing for `medvlp index build --pairs` (ConVIRT-style image/report tables).
 *
 * Fields are separated by ',' and records by LF or CRLF. A field that starts with '"' is quoted: it
 * may hold commas, newlines and '""' (one '"'), and must be followed by ',' or the end of the
 * record. A UTF-8 byte-order mark at the start is skipped; blank lines are skipped. */
#ifndef MEDVLP_INDEX_CSV_H
#define MEDVLP_INDEX_CSV_H

#include <stddef.h>

#include "medvlp/error.h"

typedef struct mv_csv_row {
    char **fields; /* n_fields NUL-terminated strings, unquoted */
    int n_fields;
    long line;     /* 1-based line where the record starts, for messages */
} mv_csv_row;

typedef struct mv_csv {
    mv_csv_row *rows; /* rows[0] is the header when the file has one */
    size_t n_rows;
    char *storage;    /* every field's bytes */
    char **field_storage;
} mv_csv;

/* Parses n_text bytes. MV_EINPUT (naming what and the line) for an unterminated quoted field or
 * text after a closing quote. */
int mv_csv_parse(const char *text, size_t n_text, const char *what, mv_csv *out, mv_error *err);
void mv_csv_free(mv_csv *csv);

#endif
