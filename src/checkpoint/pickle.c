/* pickle.c — owns the safe pickle VM (opcode loop, stack, marks, memo, object arena) and the walk
 * from an unpickled torch.save object to named tensors in a weights container (see pickle.h).
 *
 * Opcodes: protocol 2–5 binary opcodes (what torch.save's pickle protocol 2 and newer picklers
 * emit); the text opcodes of protocols 0/1 and out-of-band buffers are refused. Every allocation
 * is bounded by the pickle's length: each object costs at least one opcode byte and strings must
 * fit in the remaining input, so a hostile file cannot make us allocate more than a small multiple
 * of its own size; explicit caps below bound the stack, marks and memo as well. */
#include "checkpoint/pickle.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_STACK = 1 << 22,        /* objects on the VM stack */
    MAX_MARKS = 1 << 16,        /* nested MARKs */
    MAX_MEMO = 1 << 24,         /* memo entries */
    MAX_GLOBAL_NAME = 1024,     /* a GLOBAL's module or name */
    MAX_WALK_DEPTH = 32,        /* dict nesting when naming tensors (memo can make cycles) */
    MAX_TENSOR_NAME = 1024,
    ARENA_BLOCK = 1 << 16,
};

enum builtin {
    BUILTIN_NONE, BUILTIN_DICT, BUILTIN_SET, BUILTIN_REBUILD_TENSOR, BUILTIN_REBUILD_TENSOR_V2,
    BUILTIN_REBUILD_PARAMETER, BUILTIN_STORAGE_TYPE,
};

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} arena_block;

typedef struct memo_slot {
    uint32_t key;
    mv_pk_obj *obj;             /* NULL: empty slot */
} memo_slot;

struct mv_pickle {
    const char *path;
    arena_block *blocks;
    mv_pk_obj **stack;
    size_t n_stack, cap_stack;
    size_t *marks;              /* stack heights at each MARK */
    size_t n_marks, cap_marks;
    memo_slot *memo;
    size_t memo_cap, memo_count;
};

/* ---- arena and objects ------------------------------------------------------------------------ */

static void *arena_alloc(mv_pickle *p, size_t size)
{
    size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    arena_block *b = p->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = p->blocks;
        b->used = 0;
        b->cap = cap;
        p->blocks = b;
    }
    void *out = b->data + b->used;
    b->used += size;
    return out;
}

mv_pickle *mv_pickle_new(const char *path)
{
    mv_pickle *p = calloc(1, sizeof *p);
    if (p)
        p->path = path;
    return p;
}

void mv_pickle_free(mv_pickle *p)
{
    if (!p)
        return;
    for (arena_block *b = p->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(p->stack);
    free(p->marks);
    free(p->memo);
    free(p);
}

static int fail_at(mv_pickle *p, size_t pos, mv_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail_at(mv_pickle *p, size_t pos, mv_error *err, int code, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mv_fail(err, code, "%s: pickle byte %zu: %s", p->path, pos, what);
}

static mv_pk_obj *new_obj(mv_pickle *p, mv_pk_kind kind)
{
    mv_pk_obj *o = arena_alloc(p, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->kind = kind;
    }
    return o;
}

static mv_pk_obj *new_str(mv_pickle *p, mv_pk_kind kind, const void *bytes, size_t len)
{
    mv_pk_obj *o = new_obj(p, kind);
    char *copy = o ? arena_alloc(p, len + 1) : NULL;
    if (!copy)
        return NULL;
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    o->u.str.data = copy;
    o->u.str.len = len;
    return o;
}

static int seq_push(mv_pickle *p, mv_pk_obj *seq, mv_pk_obj *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 4;
        mv_pk_obj **grown = arena_alloc(p, cap * sizeof *grown);
        if (!grown)
            return -1;
        if (seq->u.seq.n)
            memcpy(grown, seq->u.seq.items, seq->u.seq.n * sizeof *grown);
        seq->u.seq.items = grown;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.items[seq->u.seq.n++] = item;
    return 0;
}

static const char *kind_name(mv_pk_kind kind)
{
    static const char *names[] = {"None", "bool", "int", "int", "float", "str", "bytes", "tuple", "list",
                                  "set", "dict", "global", "object", "storage", "tensor"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* ---- whitelisted globals ---------------------------------------------------------------------- */

static const struct { const char *name; mv_dtype dtype; } storage_types[] = {
    {"FloatStorage", MV_DTYPE_F32}, {"HalfStorage", MV_DTYPE_F16}, {"BFloat16Storage", MV_DTYPE_BF16},
    {"DoubleStorage", MV_DTYPE_F64}, {"LongStorage", MV_DTYPE_I64}, {"IntStorage", MV_DTYPE_I32},
    {"ShortStorage", MV_DTYPE_I16}, {"CharStorage", MV_DTYPE_I8}, {"ByteStorage", MV_DTYPE_U8},
    {"BoolStorage", MV_DTYPE_BOOL},
};

static int storage_dtype(const char *module, const char *name, mv_dtype *dtype)
{
    if (strcmp(module, "torch") && strcmp(module, "torch.cuda"))
        return 0;
    for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
        if (!strcmp(name, storage_types[i].name)) {
            *dtype = storage_types[i].dtype;
            return 1;
        }
    return 0;
}

static int builtin_of(const char *module, const char *name)
{
    mv_dtype unused;
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict"))
        return BUILTIN_DICT;
    if (!strcmp(module, "builtins")) {
        if (!strcmp(name, "dict"))
            return BUILTIN_DICT;
        if (!strcmp(name, "set") || !strcmp(name, "frozenset"))
            return BUILTIN_SET;
    }
    if (!strcmp(module, "torch._utils")) {
        if (!strcmp(name, "_rebuild_tensor"))
            return BUILTIN_REBUILD_TENSOR;
        if (!strcmp(name, "_rebuild_tensor_v2"))
            return BUILTIN_REBUILD_TENSOR_V2;
        if (!strcmp(name, "_rebuild_parameter") || !strcmp(name, "_rebuild_parameter_with_state"))
            return BUILTIN_REBUILD_PARAMETER;
    }
    if (storage_dtype(module, name, &unused))
        return BUILTIN_STORAGE_TYPE;
    return BUILTIN_NONE;
}

int mv_pickle_new_storage(mv_pickle *p, const mv_pk_obj *storage_type, const char *key, int64_t numel,
                          mv_pk_obj **out, mv_error *err)
{
    mv_dtype dtype;
    if (!storage_type || storage_type->kind != MV_PK_GLOBAL)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s: its type is a %s, not a torch storage type", p->path,
                       key, storage_type ? kind_name(storage_type->kind) : "nothing");
    if (!storage_dtype(storage_type->u.global.module, storage_type->u.global.name, &dtype))
        return mv_fail(err, MV_EUNSUPPORTED, "%s: storage %s has unsupported type %s.%s", p->path, key,
                       storage_type->u.global.module, storage_type->u.global.name);
    if (numel < 0)
        return mv_fail(err, MV_EFORMAT, "%s: storage %s has a negative size", p->path, key);
    mv_pk_obj *o = new_obj(p, MV_PK_STORAGE);
    mv_pk_obj *key_copy = o ? new_str(p, MV_PK_STR, key, strlen(key)) : NULL;
    if (!key_copy)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
    o->u.storage.dtype = dtype;
    o->u.storage.key = key_copy->u.str.data;
    o->u.storage.numel = numel;
    *out = o;
    return MV_OK;
}

static int int_arg(const mv_pk_obj *o, int64_t *out)
{
    if (!o || (o->kind != MV_PK_INT && o->kind != MV_PK_BOOL) || o->u.i < 0)
        return 0;
    *out = o->u.i;
    return 1;
}

static int int_tuple(const mv_pk_obj *o, int64_t *out, int *n)
{
    if (!o || (o->kind != MV_PK_TUPLE && o->kind != MV_PK_LIST) || o->u.seq.n > MV_MAX_DIMS)
        return 0;
    for (size_t i = 0; i < o->u.seq.n; i++)
        if (!int_arg(o->u.seq.items[i], &out[i]))
            return 0;
    *n = (int)o->u.seq.n;
    return 1;
}

/* torch._utils._rebuild_tensor[_v2](storage, storage_offset, size, stride, ...) */
static int rebuild_tensor(mv_pickle *p, size_t pos, const mv_pk_obj *args, mv_pk_obj **out, mv_error *err)
{
    mv_pk_obj *t = new_obj(p, MV_PK_TENSOR);
    if (!t)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
    mv_pk_tensor *tensor = &t->u.tensor;
    int n_stride = -1;
    mv_pk_obj *const *a = args->u.seq.items;
    if (args->u.seq.n < 4 || a[0]->kind != MV_PK_STORAGE || !int_arg(a[1], &tensor->offset) ||
        !int_tuple(a[2], tensor->shape, &tensor->ndim) || !int_tuple(a[3], tensor->stride, &n_stride) ||
        n_stride != tensor->ndim)
        return fail_at(p, pos, err, MV_EFORMAT, "malformed torch._utils._rebuild_tensor_v2 arguments "
                       "(expected storage, offset, size, stride with at most %d dimensions)", MV_MAX_DIMS);
    tensor->storage = a[0];
    *out = t;
    return MV_OK;
}

static int fill_dict(mv_pickle *p, size_t pos, mv_pk_obj *dict, const mv_pk_obj *pairs, mv_error *err)
{
    for (size_t i = 0; i < pairs->u.seq.n; i++) {
        const mv_pk_obj *pair = pairs->u.seq.items[i];
        if ((pair->kind != MV_PK_TUPLE && pair->kind != MV_PK_LIST) || pair->u.seq.n != 2)
            return fail_at(p, pos, err, MV_EFORMAT, "dict built from something other than (key, value) pairs");
        if (seq_push(p, dict, pair->u.seq.items[0]) || seq_push(p, dict, pair->u.seq.items[1]))
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
    }
    return MV_OK;
}

/* REDUCE / NEWOBJ: only whitelisted globals build values; any other callable becomes a placeholder
 * that records what would have been called. */
static int call(mv_pickle *p, size_t pos, const mv_pk_obj *callable, const mv_pk_obj *args, mv_pk_obj **out,
                mv_error *err)
{
    if (callable->kind == MV_PK_OPAQUE || (callable->kind == MV_PK_GLOBAL &&
                                          (callable->u.global.builtin == BUILTIN_NONE ||
                                           callable->u.global.builtin == BUILTIN_STORAGE_TYPE))) {
        mv_pk_obj *o = new_obj(p, MV_PK_OPAQUE);
        if (!o)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
        if (callable->kind == MV_PK_OPAQUE) {
            o->u.opaque.callable = callable->u.opaque.callable;
        } else {
            size_t len = strlen(callable->u.global.module) + strlen(callable->u.global.name) + 2;
            char *name = arena_alloc(p, len);
            if (!name)
                return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
            snprintf(name, len, "%s.%s", callable->u.global.module, callable->u.global.name);
            o->u.opaque.callable = name;
        }
        *out = o;
        return MV_OK;
    }
    if (callable->kind != MV_PK_GLOBAL)
        return fail_at(p, pos, err, MV_EFORMAT, "calls a %s, which is not callable", kind_name(callable->kind));
    if (args->kind != MV_PK_TUPLE)
        return fail_at(p, pos, err, MV_EFORMAT, "call arguments are a %s, not a tuple", kind_name(args->kind));
    const char *name = callable->u.global.name;
    size_t n_args = args->u.seq.n;
    mv_pk_obj *const *a = args->u.seq.items;
    switch (callable->u.global.builtin) {
    case BUILTIN_DICT:
    case BUILTIN_SET: {
        int is_dict = callable->u.global.builtin == BUILTIN_DICT;
        mv_pk_obj *o = new_obj(p, is_dict ? MV_PK_DICT : MV_PK_SET);
        if (!o)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
        if (n_args > 1 || (n_args == 1 && a[0]->kind != MV_PK_LIST && a[0]->kind != MV_PK_TUPLE &&
                           !(a[0]->kind == MV_PK_SET && !is_dict)))
            return fail_at(p, pos, err, MV_EFORMAT, "unexpected arguments to %s", name);
        if (n_args == 1 && is_dict) {
            int rc = fill_dict(p, pos, o, a[0], err);
            if (rc)
                return rc;
        } else if (n_args == 1) {
            for (size_t i = 0; i < a[0]->u.seq.n; i++)
                if (seq_push(p, o, a[0]->u.seq.items[i]))
                    return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
        }
        *out = o;
        return MV_OK;
    }
    case BUILTIN_REBUILD_TENSOR:
    case BUILTIN_REBUILD_TENSOR_V2:
        return rebuild_tensor(p, pos, args, out, err);
    case BUILTIN_REBUILD_PARAMETER: /* (data, requires_grad, backward_hooks[, state]): the data is the value */
        if (n_args < 1 || a[0]->kind != MV_PK_TENSOR)
            return fail_at(p, pos, err, MV_EFORMAT, "%s of something other than a tensor", name);
        *out = a[0];
        return MV_OK;
    default:
        return fail_at(p, pos, err, MV_EINTERNAL, "unhandled builtin %s", name);
    }
}

/* ---- stack, marks, memo ----------------------------------------------------------------------- */

static int push(mv_pickle *p, mv_pk_obj *o, mv_error *err)
{
    if (!o)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
    if (p->n_stack == p->cap_stack) {
        if (p->cap_stack >= MAX_STACK)
            return mv_fail(err, MV_EFORMAT, "%s: pickle stack deeper than %d", p->path, MAX_STACK);
        size_t cap = p->cap_stack ? p->cap_stack * 2 : 256;
        mv_pk_obj **grown = realloc(p->stack, cap * sizeof *grown);
        if (!grown)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
        p->stack = grown;
        p->cap_stack = cap;
    }
    p->stack[p->n_stack++] = o;
    return MV_OK;
}

static size_t fence(const mv_pickle *p)
{
    return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

static mv_pk_obj *pop(mv_pickle *p)
{
    return p->n_stack > fence(p) ? p->stack[--p->n_stack] : NULL;
}

static mv_pk_obj *top(const mv_pickle *p)
{
    return p->n_stack > fence(p) ? p->stack[p->n_stack - 1] : NULL;
}

/* Pops everything above the last MARK into a new sequence of the given kind. */
static mv_pk_obj *pop_mark(mv_pickle *p, mv_pk_kind kind)
{
    if (!p->n_marks)
        return NULL;
    size_t start = p->marks[--p->n_marks];
    mv_pk_obj *seq = new_obj(p, kind);
    if (!seq)
        return NULL;
    size_t n = p->n_stack - start;
    if (n) {
        seq->u.seq.items = arena_alloc(p, n * sizeof *seq->u.seq.items);
        if (!seq->u.seq.items)
            return NULL;
        memcpy(seq->u.seq.items, p->stack + start, n * sizeof *seq->u.seq.items);
    }
    seq->u.seq.n = seq->u.seq.cap = n;
    p->n_stack = start;
    return seq;
}

static memo_slot *memo_slot_of(mv_pickle *p, uint32_t key)
{
    size_t mask = p->memo_cap - 1, i = (key * 2654435761u) & mask;
    while (p->memo[i].obj && p->memo[i].key != key)
        i = (i + 1) & mask;
    return &p->memo[i];
}

static int memo_put(mv_pickle *p, uint32_t key, mv_pk_obj *o, mv_error *err)
{
    if ((p->memo_count + 1) * 2 > p->memo_cap) {
        if (p->memo_count >= MAX_MEMO)
            return mv_fail(err, MV_EFORMAT, "%s: pickle memo larger than %d entries", p->path, MAX_MEMO);
        size_t old_cap = p->memo_cap;
        memo_slot *old = p->memo;
        p->memo_cap = old_cap ? old_cap * 2 : 1024;
        p->memo = calloc(p->memo_cap, sizeof *p->memo);
        if (!p->memo) {
            p->memo = old;
            p->memo_cap = old_cap;
            return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
        }
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].obj)
                *memo_slot_of(p, old[i].key) = old[i];
        free(old);
    }
    memo_slot *slot = memo_slot_of(p, key);
    if (!slot->obj)
        p->memo_count++;
    slot->key = key;
    slot->obj = o;
    return MV_OK;
}

static mv_pk_obj *memo_get(mv_pickle *p, uint32_t key)
{
    return p->memo_cap ? memo_slot_of(p, key)->obj : NULL;
}

/* ---- the opcode loop ---------------------------------------------------------------------------- */

static uint64_t read_le(const unsigned char *d, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | d[i];
    return v;
}

/* Python longs: little-endian two's complement of any length; up to 8 bytes becomes an INT. */
static mv_pk_obj *new_long(mv_pickle *p, const unsigned char *d, size_t n)
{
    if (n > 8)
        return new_str(p, MV_PK_BIGINT, d, n);
    mv_pk_obj *o = new_obj(p, MV_PK_INT);
    if (o && n) {
        uint64_t v = read_le(d, (int)n);
        if (n < 8 && (d[n - 1] & 0x80))
            v |= ~(uint64_t)0 << (8 * n);
        o->u.i = (int64_t)v;
    }
    return o;
}

static mv_pk_obj *new_int(mv_pickle *p, int64_t v)
{
    mv_pk_obj *o = new_obj(p, MV_PK_INT);
    if (o)
        o->u.i = v;
    return o;
}

static int make_global(mv_pickle *p, size_t pos, const char *module, size_t module_len, const char *name,
                       size_t name_len, mv_error *err)
{
    if (module_len > MAX_GLOBAL_NAME || name_len > MAX_GLOBAL_NAME)
        return fail_at(p, pos, err, MV_EFORMAT, "global name longer than %d bytes", MAX_GLOBAL_NAME);
    if (module_len == 11 && !memcmp(module, "__builtin__", 11)) { /* protocol 2's name, as Python maps it */
        module = "builtins";
        module_len = 8;
    }
    mv_pk_obj *o = new_obj(p, MV_PK_GLOBAL);
    mv_pk_obj *m = o ? new_str(p, MV_PK_STR, module, module_len) : NULL;
    mv_pk_obj *n = m ? new_str(p, MV_PK_STR, name, name_len) : NULL;
    if (!n)
        return mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path);
    o->u.global.module = m->u.str.data;
    o->u.global.name = n->u.str.data;
    o->u.global.builtin = builtin_of(o->u.global.module, o->u.global.name);
    return push(p, o, err);
}

int mv_pickle_load(mv_pickle *p, const unsigned char *d, size_t size, size_t *consumed,
                   mv_pk_persistent_load persistent_load, void *ctx, mv_pk_obj **out, mv_error *err)
{
    size_t pos = 0;
    int rc = MV_OK;
    p->n_stack = 0;
    p->n_marks = 0;
    p->memo_count = 0;
    if (p->memo)
        memset(p->memo, 0, p->memo_cap * sizeof *p->memo);
    *out = NULL;
#define NEED(n) do { if ((uint64_t)(n) > size - pos) \
    return fail_at(p, op_pos, err, MV_EFORMAT, "truncated (opcode 0x%02x needs %llu more bytes)", op, \
                   (unsigned long long)(n)); } while (0)
#define POP(var) do { if (!((var) = pop(p))) \
    return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at opcode 0x%02x", op); } while (0)
#define PUSH(o) do { if ((rc = push(p, (o), err))) return rc; } while (0)
#define OOM() mv_fail(err, MV_ENOMEM, "%s: out of memory", p->path)
    for (;;) {
        size_t op_pos = pos;
        if (pos >= size)
            return fail_at(p, pos, err, MV_EFORMAT, "truncated (no STOP opcode)");
        unsigned op = d[pos++];
        mv_pk_obj *a, *b, *c;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (d[pos] < 2 || d[pos] > 5)
                return fail_at(p, op_pos, err, MV_EUNSUPPORTED, "pickle protocol %u (2 to 5 supported)", d[pos]);
            pos++;
            break;
        case 0x95: /* FRAME: a length hint only */
            NEED(8);
            pos += 8;
            break;
        case '.': /* STOP */
            POP(a);
            *out = a;
            *consumed = pos;
            return MV_OK;
        case '(': /* MARK */
            if (p->n_marks == p->cap_marks) {
                if (p->cap_marks >= MAX_MARKS)
                    return fail_at(p, op_pos, err, MV_EFORMAT, "more than %d nested MARKs", MAX_MARKS);
                size_t cap = p->cap_marks ? p->cap_marks * 2 : 64;
                size_t *grown = realloc(p->marks, cap * sizeof *grown);
                if (!grown)
                    return OOM();
                p->marks = grown;
                p->cap_marks = cap;
            }
            p->marks[p->n_marks++] = p->n_stack;
            break;
        case '0': /* POP */
            if (p->n_stack > fence(p))
                p->n_stack--;
            else if (p->n_marks)
                p->n_marks--;
            else
                return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at POP");
            break;
        case '1': /* POP_MARK */
            if (!p->n_marks)
                return fail_at(p, op_pos, err, MV_EFORMAT, "POP_MARK without MARK");
            p->n_stack = p->marks[--p->n_marks];
            break;
        case '2': /* DUP */
            if (!(a = top(p)))
                return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at DUP");
            PUSH(a);
            break;
        case 'N': PUSH(new_obj(p, MV_PK_NONE)); break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if ((a = new_obj(p, MV_PK_BOOL)))
                a->u.i = op == 0x88;
            PUSH(a);
            break;
        case 'J': NEED(4); PUSH(new_int(p, (int32_t)(uint32_t)read_le(d + pos, 4))); pos += 4; break; /* BININT */
        case 'K': NEED(1); PUSH(new_int(p, d[pos])); pos += 1; break;                              /* BININT1 */
        case 'M': NEED(2); PUSH(new_int(p, (int64_t)read_le(d + pos, 2))); pos += 2; break;        /* BININT2 */
        case 0x8a: /* LONG1 */
        case 0x8b: { /* LONG4 */
            int width = op == 0x8a ? 1 : 4;
            NEED(width);
            uint64_t n = read_le(d + pos, width);
            if (op == 0x8b && (n & 0x80000000u))
                return fail_at(p, op_pos, err, MV_EFORMAT, "negative LONG4 length");
            pos += (size_t)width;
            NEED(n);
            PUSH(new_long(p, d + pos, (size_t)n));
            pos += (size_t)n;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian IEEE double */
            NEED(8);
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = (bits << 8) | d[pos + (size_t)i];
            pos += 8;
            if ((a = new_obj(p, MV_PK_FLOAT)))
                memcpy(&a->u.f, &bits, sizeof bits);
            PUSH(a);
            break;
        }
        case 'X': case 0x8c: case 0x8d:             /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
        case 'T': case 'U':                         /* BINSTRING, SHORT_BINSTRING */
        case 'B': case 'C': case 0x8e: case 0x96: { /* BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8 */
            int width = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
            NEED(width);
            uint64_t n = read_le(d + pos, width);
            if (op == 'T' && (n & 0x80000000u))
                return fail_at(p, op_pos, err, MV_EFORMAT, "negative BINSTRING length");
            pos += (size_t)width;
            NEED(n);
            int is_text = op == 'X' || op == 0x8c || op == 0x8d || op == 'T' || op == 'U';
            PUSH(new_str(p, is_text ? MV_PK_STR : MV_PK_BYTES, d + pos, (size_t)n));
            pos += (size_t)n;
            break;
        }
        case '}': PUSH(new_obj(p, MV_PK_DICT)); break;  /* EMPTY_DICT */
        case ']': PUSH(new_obj(p, MV_PK_LIST)); break;  /* EMPTY_LIST */
        case ')': PUSH(new_obj(p, MV_PK_TUPLE)); break; /* EMPTY_TUPLE */
        case 0x8f: PUSH(new_obj(p, MV_PK_SET)); break;  /* EMPTY_SET */
        case 't': case 'l': case 'd': case 0x91: { /* TUPLE, LIST, DICT, FROZENSET */
            mv_pk_kind kind = op == 't' ? MV_PK_TUPLE : op == 'l' ? MV_PK_LIST : op == 'd' ? MV_PK_DICT : MV_PK_SET;
            if (!p->n_marks)
                return fail_at(p, op_pos, err, MV_EFORMAT, "opcode 0x%02x without MARK", op);
            if (!(a = pop_mark(p, kind)))
                return OOM();
            if (kind == MV_PK_DICT && a->u.seq.n % 2)
                return fail_at(p, op_pos, err, MV_EFORMAT, "DICT with an odd number of items");
            PUSH(a);
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1, TUPLE2, TUPLE3 */
            size_t n = op - 0x84;
            if (p->n_stack - fence(p) < n)
                return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at TUPLE%zu", n);
            if (!(a = new_obj(p, MV_PK_TUPLE)) || !(a->u.seq.items = arena_alloc(p, n * sizeof(mv_pk_obj *))))
                return OOM();
            p->n_stack -= n;
            memcpy(a->u.seq.items, p->stack + p->n_stack, n * sizeof(mv_pk_obj *));
            a->u.seq.n = a->u.seq.cap = n;
            PUSH(a);
            break;
        }
        case 'a': case 'e': case 's': case 'u': case 0x90: { /* APPEND(S), SETITEM(S), ADDITEMS */
            int many = op == 'e' || op == 'u' || op == 0x90;
            if (many) {
                if (!p->n_marks)
                    return fail_at(p, op_pos, err, MV_EFORMAT, "opcode 0x%02x without MARK", op);
                if (!(b = pop_mark(p, MV_PK_LIST)))
                    return OOM();
            } else {
                if (!(b = new_obj(p, MV_PK_LIST)))
                    return OOM();
                size_t n = op == 's' ? 2 : 1;
                if (p->n_stack - fence(p) < n + 1)
                    return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at opcode 0x%02x", op);
                for (size_t i = 0; i < n; i++)
                    if (seq_push(p, b, p->stack[p->n_stack - n + i]))
                        return OOM();
                p->n_stack -= n;
            }
            if (!(a = top(p)))
                return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at opcode 0x%02x", op);
            int is_dict_op = op == 's' || op == 'u';
            mv_pk_kind want = is_dict_op ? MV_PK_DICT : op == 0x90 ? MV_PK_SET : MV_PK_LIST;
            if (a->kind == MV_PK_OPAQUE)
                break; /* items given to a placeholder (a custom container) are dropped */
            if (a->kind != want)
                return fail_at(p, op_pos, err, MV_EFORMAT, "opcode 0x%02x applied to a %s", op, kind_name(a->kind));
            if (is_dict_op && b->u.seq.n % 2)
                return fail_at(p, op_pos, err, MV_EFORMAT, "SETITEMS with an odd number of items");
            for (size_t i = 0; i < b->u.seq.n; i++)
                if (seq_push(p, a, b->u.seq.items[i]))
                    return OOM();
            break;
        }
        case 'q': case 'r': case 0x94: { /* BINPUT, LONG_BINPUT, MEMOIZE */
            uint64_t key = p->memo_count;
            if (op != 0x94) {
                int width = op == 'q' ? 1 : 4;
                NEED(width);
                key = read_le(d + pos, width);
                pos += (size_t)width;
            }
            if (!(a = top(p)))
                return fail_at(p, op_pos, err, MV_EFORMAT, "memo put from an empty stack");
            if (key > UINT32_MAX)
                return fail_at(p, op_pos, err, MV_EFORMAT, "memo key too large");
            if ((rc = memo_put(p, (uint32_t)key, a, err)))
                return rc;
            break;
        }
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            int width = op == 'h' ? 1 : 4;
            NEED(width);
            uint32_t key = (uint32_t)read_le(d + pos, width);
            pos += (size_t)width;
            if (!(a = memo_get(p, key)))
                return fail_at(p, op_pos, err, MV_EFORMAT, "memo key %u was never stored", key);
            PUSH(a);
            break;
        }
        case 'c': { /* GLOBAL: "module\nname\n" */
            const char *module = (const char *)d + pos;
            const unsigned char *nl1 = memchr(d + pos, '\n', size - pos);
            const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - d)) : NULL;
            if (!nl2)
                return fail_at(p, op_pos, err, MV_EFORMAT, "truncated GLOBAL");
            const char *name = (const char *)nl1 + 1;
            if ((rc = make_global(p, op_pos, module, (size_t)((const char *)nl1 - module), name,
                                  (size_t)((const char *)nl2 - name), err)))
                return rc;
            pos = (size_t)(nl2 + 1 - d);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            POP(b);
            POP(a);
            if (a->kind != MV_PK_STR || b->kind != MV_PK_STR)
                return fail_at(p, op_pos, err, MV_EFORMAT, "STACK_GLOBAL of non-strings");
            if ((rc = make_global(p, op_pos, a->u.str.data, a->u.str.len, b->u.str.data, b->u.str.len, err)))
                return rc;
            break;
        case 'R': case 0x81: case 0x92: { /* REDUCE, NEWOBJ, NEWOBJ_EX (kwargs ignored) */
            if (op == 0x92)
                POP(c);
            POP(b);
            POP(a);
            mv_pk_obj *result = NULL;
            if ((rc = call(p, op_pos, a, b, &result, err)))
                return rc;
            PUSH(result);
            break;
        }
        case 'b': /* BUILD: state only sets attributes (OrderedDict._metadata, object __dict__): dropped */
            POP(b);
            if (!top(p))
                return fail_at(p, op_pos, err, MV_EFORMAT, "stack underflow at BUILD");
            break;
        case 'Q': { /* BINPERSID */
            POP(a);
            if (!persistent_load)
                return fail_at(p, op_pos, err, MV_EFORMAT, "unexpected persistent id");
            mv_pk_obj *result = NULL;
            if ((rc = persistent_load(ctx, p, a, &result, err)))
                return rc;
            PUSH(result);
            break;
        }
        default:
            return fail_at(p, op_pos, err, MV_EUNSUPPORTED, "unsupported pickle opcode 0x%02x", op);
        }
    }
#undef NEED
#undef POP
#undef PUSH
#undef OOM
}

/* ---- from the unpickled object to named tensors ------------------------------------------------ */

mv_pk_obj *mv_pickle_dict_get(const mv_pk_obj *dict, const char *key)
{
    if (!dict || dict->kind != MV_PK_DICT)
        return NULL;
    for (size_t i = 0; i + 1 < dict->u.seq.n; i += 2) {
        const mv_pk_obj *k = dict->u.seq.items[i];
        if (k->kind == MV_PK_STR && !strcmp(k->u.str.data, key))
            return dict->u.seq.items[i + 1];
    }
    return NULL;
}

typedef struct walk {
    mv_weights *weights;
    const char *path;
    char name[MAX_TENSOR_NAME];
    size_t n_tensors;
} walk;

static int refuse_opaque(const walk *wk, const char *what, const mv_pk_obj *o, mv_error *err)
{
    return mv_fail(err, MV_EUNSUPPORTED, "%s: %s is not a tensor: the checkpoint tries to call %s to build "
                   "it; refusing to load it (unpickling would run that code)", wk->path, what, o->u.opaque.callable);
}

static int add_tensor(walk *wk, const mv_pk_tensor *t, mv_error *err)
{
    const mv_pk_storage *s = &t->storage->u.storage;
    size_t elsize = mv_weights_dtype_size(s->dtype);
    uint64_t n_elements = 1, last = (uint64_t)t->offset;
    int empty = 0;
    for (int d = 0; d < t->ndim; d++)
        empty |= t->shape[d] == 0;
    for (int d = 0; d < t->ndim && !empty; d++) {
        uint64_t span;
        if (__builtin_mul_overflow((uint64_t)t->shape[d], n_elements, &n_elements) ||
            __builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &span) ||
            __builtin_add_overflow(last, span, &last))
            return mv_fail(err, MV_EFORMAT, "%s: tensor %s has an overflowing size/stride", wk->path, wk->name);
    }
    if (empty)
        n_elements = 0;
    uint64_t end_bytes;
    if (!empty && (__builtin_add_overflow(last, 1, &end_bytes) ||
                   __builtin_mul_overflow(end_bytes, (uint64_t)elsize, &end_bytes) || end_bytes > s->n_bytes))
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s reads past the end of storage %s (%zu bytes)", wk->path,
                       wk->name, s->key, s->n_bytes);
    if (!empty && !s->data)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s: storage %s has no data", wk->path, wk->name, s->key);
    int contiguous = 1;
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expected)
            contiguous = 0;
        expected *= t->shape[d];
    }
    if (!contiguous && !empty && n_elements > (uint64_t)s->n_bytes / elsize)
        return mv_fail(err, MV_EFORMAT, "%s: tensor %s is a broadcast or overlapping view (%llu elements over "
                       "a storage of %zu bytes)", wk->path, wk->name, (unsigned long long)n_elements, s->n_bytes);
    size_t n_bytes = (size_t)n_elements * elsize;
    const unsigned char *data = empty ? s->data : s->data + (size_t)t->offset * elsize;
    if (!contiguous && !empty) { /* a strided view: gather it into a buffer the container keeps */
        unsigned char *buffer = malloc(n_bytes);
        if (!buffer)
            return mv_fail(err, MV_ENOMEM, "%s: out of memory copying %s", wk->path, wk->name);
        int64_t index[MV_MAX_DIMS] = {0}, source = t->offset;
        for (size_t i = 0; i < n_elements; i++) {
            memcpy(buffer + i * elsize, s->data + (size_t)source * elsize, elsize);
            for (int d = t->ndim - 1; d >= 0; d--) {
                source += t->stride[d];
                if (++index[d] < t->shape[d])
                    break;
                source -= t->stride[d] * t->shape[d];
                index[d] = 0;
            }
        }
        int rc = mv_weights_keep_buffer(wk->weights, buffer, err);
        if (rc)
            return rc;
        data = buffer;
    }
    int rc = mv_weights_add(wk->weights, wk->name, s->dtype, t->ndim, t->shape, data, n_bytes, err);
    if (!rc)
        wk->n_tensors++;
    return rc;
}

static int skipped_at_top(const char *key)
{
    return !strncmp(key, "optimizer", 9) || !strncmp(key, "lr_scheduler", 12);
}

static int walk_dict(walk *wk, const mv_pk_obj *dict, size_t name_len, int depth, mv_error *err)
{
    if (depth > MAX_WALK_DEPTH)
        return mv_fail(err, MV_EFORMAT, "%s: dicts nested deeper than %d under %s", wk->path, MAX_WALK_DEPTH,
                       wk->name);
    for (size_t i = 0; i + 1 < dict->u.seq.n; i += 2) {
        const mv_pk_obj *key = dict->u.seq.items[i], *value = dict->u.seq.items[i + 1];
        char key_text[32];
        const char *key_str = key_text;
        if (key->kind == MV_PK_STR)
            key_str = key->u.str.data;
        else if (key->kind == MV_PK_INT)
            snprintf(key_text, sizeof key_text, "%lld", (long long)key->u.i);
        else
            continue; /* not a name: no state dict uses such keys */
        if (depth == 0 && value->kind == MV_PK_DICT && skipped_at_top(key_str))
            continue;
        size_t key_len = strlen(key_str), len = name_len + (name_len ? 1 : 0) + key_len;
        if (len >= sizeof wk->name)
            return mv_fail(err, MV_EFORMAT, "%s: tensor name longer than %d bytes", wk->path, MAX_TENSOR_NAME);
        if (name_len)
            wk->name[name_len] = '.';
        memcpy(wk->name + len - key_len, key_str, key_len + 1);
        int rc = MV_OK;
        if (value->kind == MV_PK_TENSOR)
            rc = add_tensor(wk, &value->u.tensor, err);
        else if (value->kind == MV_PK_DICT)
            rc = walk_dict(wk, value, len, depth + 1, err);
        else if (value->kind == MV_PK_OPAQUE)
            rc = refuse_opaque(wk, wk->name, value, err);
        wk->name[name_len] = '\0';
        if (rc)
            return rc;
    }
    return MV_OK;
}

int mv_pickle_add_tensors(mv_weights *weights, const char *path, const mv_pk_obj *root, mv_error *err)
{
    walk wk = {.weights = weights, .path = path};
    if (root->kind == MV_PK_OPAQUE)
        return refuse_opaque(&wk, "the pickled object", root, err);
    if (root->kind != MV_PK_DICT)
        return mv_fail(err, MV_EFORMAT, "%s: the pickled object is a %s, expected a dict of tensors", path,
                       kind_name(root->kind));
    const mv_pk_obj *state = root;
    const char *wrappers[] = {"state_dict", "model"};
    for (size_t i = 0; i < 2 && state == root; i++) {
        const mv_pk_obj *inner = mv_pickle_dict_get(root, wrappers[i]);
        if (inner && inner->kind == MV_PK_OPAQUE)
            return refuse_opaque(&wk, wrappers[i], inner, err);
        if (inner && inner->kind == MV_PK_DICT)
            state = inner;
    }
    int rc = walk_dict(&wk, state, 0, 0, err);
    if (rc)
        return rc;
    if (!wk.n_tensors)
        return mv_fail(err, MV_EFORMAT, "%s: no tensors found in the checkpoint", path);
    return MV_OK;
}
