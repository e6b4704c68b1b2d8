// SQLite VFS shim that keeps a checksum in the reserved bytes of every catalog page.
// Why: SQLite only notices damage in bytes it reads; a flip in a free page, in unused space
// inside a b-tree page or in a superseded WAL frame goes unseen by integrity_check. With a
// checksum on every page, `logitctl verify` can check every byte of the file, and every page
// SQLite reads is checked before it is believed. Format: schema/CATALOG_FILE.md.

#include "catalog_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SEED 0x6C6F67697463617AULL /* "logitcaz": any fixed value; part of the format */
#define WAL_HEADER 32
#define FRAME_HEADER 24

// MARK: checksums

uint64_t logit_catalog_page_checksum(const uint8_t *page, size_t page_size) {
    return XXH3_64bits_withSeed(page, page_size - LOGIT_CATALOG_RESERVE, SEED);
}

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

int logit_catalog_page_checksum_ok(const uint8_t *page, size_t page_size) {
    return load_le64(page + page_size - LOGIT_CATALOG_RESERVE) == logit_catalog_page_checksum(page, page_size);
}

void logit_catalog_wal_checksum(int big_endian, const uint8_t *d, size_t n, uint32_t s[2]) {
    uint32_t s1 = s[0], s2 = s[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint32_t x0, x1;
        if (big_endian) {
            x0 = load_be32(d + i); x1 = load_be32(d + i + 4);
        } else {
            x0 = (uint32_t)d[i] | ((uint32_t)d[i + 1] << 8) | ((uint32_t)d[i + 2] << 16) | ((uint32_t)d[i + 3] << 24);
            x1 = (uint32_t)d[i + 4] | ((uint32_t)d[i + 5] << 8) | ((uint32_t)d[i + 6] << 16) | ((uint32_t)d[i + 7] << 24);
        }
        s1 += x0 + s2;
        s2 += x1 + s1;
    }
    s[0] = s1; s[1] = s2;
}

// MARK: failure record (for error messages: SQLite itself only says "disk I/O error")

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static char failure_text[512];
static uint64_t failure_count;

static void record_failure(const char *text) {
    pthread_mutex_lock(&failure_lock);
    snprintf(failure_text, sizeof failure_text, "%s", text);
    failure_count++;
    pthread_mutex_unlock(&failure_lock);
    sqlite3_log(SQLITE_IOERR_DATA, "%s", text);
}

uint64_t logit_catalog_last_failure(char *buf, size_t len) {
    pthread_mutex_lock(&failure_lock);
    if (len > 0) snprintf(buf, len, "%s", failure_text);
    uint64_t n = failure_count;
    pthread_mutex_unlock(&failure_lock);
    return n;
}

static const char *base_name(const char *path) {
    if (!path) return "(temporary file)";
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// MARK: the shim

enum { KIND_OTHER = 0, KIND_MAIN = 1, KIND_WAL = 2 };

typedef struct LogitFile LogitFile;
struct LogitFile {
    sqlite3_file base;
    const char *name;
    int kind;
    int enabled;        // main db: a marked catalog (reserve 8, our application id)
    int page_size;      // main db
    LogitFile *db;      // WAL: its main database file (opened first, closed last)
    uint8_t *scratch;   // a page: written copies carry the checksum, callers' buffers stay untouched
    int scratch_size;
    int has_pending;    // WAL: a frame header held back until its page is written
    sqlite3_int64 pending_offset;
    uint8_t pending[FRAME_HEADER];
    sqlite3_int64 align_pad; // keeps the wrapped file 8-byte aligned
};

#define ORIG(p) ((sqlite3_file *)(((LogitFile *)(p)) + 1))
#define ORIG_VFS ((sqlite3_vfs *)logit_vfs.pAppData)

static sqlite3_vfs logit_vfs;

static int wal_enabled(LogitFile *p, int *page_size) {
    if (p->kind != KIND_WAL || !p->db || !p->db->enabled) return 0;
    *page_size = p->db->page_size;
    return 1;
}

/// Marks a main database file as a checksummed catalog when its header says so. Never unmarks:
/// a damaged header must not switch checking off.
static void check_header(LogitFile *p, const uint8_t *h) {
    if (memcmp(h, "SQLite format 3", 16) != 0) return;
    if (h[20] != LOGIT_CATALOG_RESERVE || load_be32(h + 68) != (uint32_t)LOGIT_CATALOG_APPLICATION_ID) return;
    int size = (h[16] << 8) | h[17];
    if (size == 1) size = 65536;
    if (size < 512 || (size & (size - 1)) != 0) return;
    p->page_size = size;
    p->enabled = 1;
}

static uint8_t *scratch(LogitFile *p, int size) {
    if (p->scratch_size < size) {
        uint8_t *b = realloc(p->scratch, (size_t)size);
        if (!b) return NULL;
        p->scratch = b;
        p->scratch_size = size;
    }
    return p->scratch;
}

/// Writes the held-back WAL frame header as SQLite gave it (the rewrite-checksums path writes
/// headers without pages; those are already computed over the stored pages).
static int flush_pending(LogitFile *p) {
    if (!p->has_pending) return SQLITE_OK;
    p->has_pending = 0;
    return ORIG(p)->pMethods->xWrite(ORIG(p), p->pending, FRAME_HEADER, p->pending_offset);
}

static int x_close(sqlite3_file *f) {
    LogitFile *p = (LogitFile *)f;
    int rc = flush_pending(p);
    int rc2 = ORIG(p)->pMethods->xClose(ORIG(p));
    free(p->scratch);
    p->scratch = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int x_read(sqlite3_file *f, void *buf, int amount, sqlite3_int64 offset) {
    LogitFile *p = (LogitFile *)f;
    int rc = flush_pending(p);
    if (rc != SQLITE_OK) return rc;
    rc = ORIG(p)->pMethods->xRead(ORIG(p), buf, amount, offset);
    if (rc != SQLITE_OK) return rc;
    char text[400];
    if (p->kind == KIND_MAIN) {
        if (!p->enabled && offset == 0 && amount >= 100) check_header(p, buf);
        if (p->enabled && amount == p->page_size && offset % p->page_size == 0
            && !logit_catalog_page_checksum_ok(buf, (size_t)amount)) {
            const uint8_t *page = buf;
            snprintf(text, sizeof text, "%s page %lld (byte offset %lld): page checksum mismatch (stored %016llx, content gives %016llx)",
                     base_name(p->name), (long long)(offset / p->page_size + 1), (long long)offset,
                     (unsigned long long)load_le64(page + amount - LOGIT_CATALOG_RESERVE),
                     (unsigned long long)logit_catalog_page_checksum(page, (size_t)amount));
            record_failure(text);
            return SQLITE_IOERR_DATA;
        }
        return SQLITE_OK;
    }
    int ps;
    if (wal_enabled(p, &ps) && amount == ps && offset >= WAL_HEADER + FRAME_HEADER
        && (offset - WAL_HEADER) % (ps + FRAME_HEADER) == FRAME_HEADER
        && !logit_catalog_page_checksum_ok(buf, (size_t)amount)) {
        uint8_t header[FRAME_HEADER] = {0};
        ORIG(p)->pMethods->xRead(ORIG(p), header, FRAME_HEADER, offset - FRAME_HEADER);
        snprintf(text, sizeof text, "%s frame %lld (page %u, byte offset %lld): page checksum mismatch",
                 base_name(p->name), (long long)((offset - WAL_HEADER) / (ps + FRAME_HEADER) + 1),
                 load_be32(header), (long long)offset);
        record_failure(text);
        return SQLITE_IOERR_DATA;
    }
    return SQLITE_OK;
}

/// Writes a WAL frame's page with its checksum, then its header with the frame checksum
/// recomputed over the page as stored (SQLite computed it before the reserved bytes were set),
/// chained from the previous frame's stored checksum. Page before header: a crash in between
/// leaves a frame whose header is stale, which SQLite and the audit both read as "not there".
static int write_wal_page(LogitFile *p, const uint8_t *page, int ps, sqlite3_int64 offset) {
    sqlite3_file *o = ORIG(p);
    int rc = o->pMethods->xWrite(o, page, ps, offset);
    if (rc != SQLITE_OK || !p->has_pending || p->pending_offset != offset - FRAME_HEADER) {
        // No header held back: an in-place rewrite of a frame of the open transaction; SQLite
        // rewrites the checksums of those frames itself at commit (walRewriteChecksums).
        if (rc == SQLITE_OK) rc = flush_pending(p);
        return rc;
    }
    p->has_pending = 0;
    uint8_t wal_header[WAL_HEADER];
    rc = o->pMethods->xRead(o, wal_header, WAL_HEADER, 0);
    if (rc != SQLITE_OK) return rc;
    uint32_t s[2];
    sqlite3_int64 frame = (p->pending_offset - WAL_HEADER) / (ps + FRAME_HEADER);
    if (frame == 0) {
        s[0] = load_be32(wal_header + 24); s[1] = load_be32(wal_header + 28);
    } else {
        uint8_t prev[8];
        rc = o->pMethods->xRead(o, prev, 8, p->pending_offset - (ps + FRAME_HEADER) + 16);
        if (rc != SQLITE_OK) return rc;
        s[0] = load_be32(prev); s[1] = load_be32(prev + 4);
    }
    int big_endian = (int)(load_be32(wal_header) & 1);
    logit_catalog_wal_checksum(big_endian, p->pending, 8, s);
    logit_catalog_wal_checksum(big_endian, page, (size_t)ps, s);
    store_be32(p->pending + 16, s[0]);
    store_be32(p->pending + 20, s[1]);
    return o->pMethods->xWrite(o, p->pending, FRAME_HEADER, p->pending_offset);
}

static int x_write(sqlite3_file *f, const void *buf, int amount, sqlite3_int64 offset) {
    LogitFile *p = (LogitFile *)f;
    sqlite3_file *o = ORIG(p);
    if (p->kind == KIND_MAIN) {
        if (offset == 0 && amount >= 100) check_header(p, buf);
        if (!p->enabled) return o->pMethods->xWrite(o, buf, amount, offset);
        if (amount != p->page_size || offset % p->page_size != 0) {
            char text[300];
            snprintf(text, sizeof text, "%s: refusing a %d-byte write at offset %lld, not a whole page: it would leave a page checksum stale",
                     base_name(p->name), amount, (long long)offset);
            record_failure(text);
            return SQLITE_IOERR_WRITE;
        }
        uint8_t *page = scratch(p, amount);
        if (!page) return SQLITE_IOERR_NOMEM;
        memcpy(page, buf, (size_t)amount);
        store_le64(page + amount - LOGIT_CATALOG_RESERVE, logit_catalog_page_checksum(page, (size_t)amount));
        return o->pMethods->xWrite(o, page, amount, offset);
    }
    int ps;
    if (wal_enabled(p, &ps) && offset >= WAL_HEADER) {
        sqlite3_int64 within = (offset - WAL_HEADER) % (ps + FRAME_HEADER);
        if (amount == FRAME_HEADER && within == 0) {
            int rc = flush_pending(p);
            if (rc != SQLITE_OK) return rc;
            memcpy(p->pending, buf, FRAME_HEADER);
            p->pending_offset = offset;
            p->has_pending = 1;
            return SQLITE_OK;
        }
        if (amount == ps && within == FRAME_HEADER) {
            uint8_t *page = scratch(p, amount);
            if (!page) return SQLITE_IOERR_NOMEM;
            memcpy(page, buf, (size_t)amount);
            store_le64(page + amount - LOGIT_CATALOG_RESERVE, logit_catalog_page_checksum(page, (size_t)amount));
            return write_wal_page(p, page, ps, offset);
        }
    }
    int rc = flush_pending(p);
    if (rc != SQLITE_OK) return rc;
    return o->pMethods->xWrite(o, buf, amount, offset);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
    LogitFile *p = (LogitFile *)f;
    int rc = flush_pending(p);
    return rc != SQLITE_OK ? rc : ORIG(p)->pMethods->xTruncate(ORIG(p), size);
}

static int x_sync(sqlite3_file *f, int flags) {
    LogitFile *p = (LogitFile *)f;
    int rc = flush_pending(p);
    return rc != SQLITE_OK ? rc : ORIG(p)->pMethods->xSync(ORIG(p), flags);
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    LogitFile *p = (LogitFile *)f;
    int rc = flush_pending(p);
    return rc != SQLITE_OK ? rc : ORIG(p)->pMethods->xFileSize(ORIG(p), size);
}

static int x_lock(sqlite3_file *f, int level) { return ORIG(f)->pMethods->xLock(ORIG(f), level); }
static int x_unlock(sqlite3_file *f, int level) { return ORIG(f)->pMethods->xUnlock(ORIG(f), level); }
static int x_check_reserved_lock(sqlite3_file *f, int *out) { return ORIG(f)->pMethods->xCheckReservedLock(ORIG(f), out); }

static int x_file_control(sqlite3_file *f, int op, void *arg) {
    LogitFile *p = (LogitFile *)f;
    if (op == SQLITE_FCNTL_MMAP_SIZE && p->kind == KIND_MAIN) {
        // Memory-mapped pages would bypass xRead and so the checksum check: keep mmap off.
        sqlite3_int64 *size = arg;
        *size = 0;
        return SQLITE_OK;
    }
    int rc = ORIG(p)->pMethods->xFileControl(ORIG(p), op, arg);
    if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME && arg) {
        char *inner = *(char **)arg;
        *(char **)arg = sqlite3_mprintf(LOGIT_CATALOG_VFS_NAME "/%z", inner);
    }
    return rc;
}

static int x_sector_size(sqlite3_file *f) { return ORIG(f)->pMethods->xSectorSize(ORIG(f)); }
static int x_device_characteristics(sqlite3_file *f) { return ORIG(f)->pMethods->xDeviceCharacteristics(ORIG(f)); }
static int x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **pp) {
    return ORIG(f)->pMethods->xShmMap(ORIG(f), page, size, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags) { return ORIG(f)->pMethods->xShmLock(ORIG(f), offset, n, flags); }
static void x_shm_barrier(sqlite3_file *f) { ORIG(f)->pMethods->xShmBarrier(ORIG(f)); }
static int x_shm_unmap(sqlite3_file *f, int delete_flag) { return ORIG(f)->pMethods->xShmUnmap(ORIG(f), delete_flag); }

static int x_fetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **pp) {
    (void)f; (void)offset; (void)amount;
    *pp = NULL; // never hand out mapped pages: every read goes through x_read and its check
    return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 offset, void *ptr) {
    (void)f; (void)offset; (void)ptr;
    return SQLITE_OK;
}

static const sqlite3_io_methods logit_io = {
    3, x_close, x_read, x_write, x_truncate, x_sync, x_file_size, x_lock, x_unlock,
    x_check_reserved_lock, x_file_control, x_sector_size, x_device_characteristics,
    x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch, x_unfetch,
};

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out_flags) {
    (void)vfs;
    LogitFile *p = (LogitFile *)f;
    memset(p, 0, sizeof *p);
    int rc = ORIG_VFS->xOpen(ORIG_VFS, name, ORIG(p), flags, out_flags);
    if (rc != SQLITE_OK) {
        f->pMethods = NULL;
        return rc;
    }
    p->name = name;
    if (flags & SQLITE_OPEN_MAIN_DB) {
        p->kind = KIND_MAIN;
        uint8_t header[100];
        if (ORIG(p)->pMethods->xRead(ORIG(p), header, sizeof header, 0) == SQLITE_OK) check_header(p, header);
    } else if ((flags & SQLITE_OPEN_WAL) && name) {
        p->kind = KIND_WAL;
        sqlite3_file *db = sqlite3_database_file_object(name);
        if (db && db->pMethods == &logit_io) p->db = (LogitFile *)db;
    }
    f->pMethods = &logit_io;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir) { (void)v; return ORIG_VFS->xDelete(ORIG_VFS, name, sync_dir); }
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return ORIG_VFS->xAccess(ORIG_VFS, name, flags, out); }
static int v_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) { (void)v; return ORIG_VFS->xFullPathname(ORIG_VFS, name, n, out); }
static void *v_dl_open(sqlite3_vfs *v, const char *path) { (void)v; return ORIG_VFS->xDlOpen(ORIG_VFS, path); }
static void v_dl_error(sqlite3_vfs *v, int n, char *out) { (void)v; ORIG_VFS->xDlError(ORIG_VFS, n, out); }
static void (*v_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) { (void)v; return ORIG_VFS->xDlSym(ORIG_VFS, h, sym); }
static void v_dl_close(sqlite3_vfs *v, void *h) { (void)v; ORIG_VFS->xDlClose(ORIG_VFS, h); }
static int v_randomness(sqlite3_vfs *v, int n, char *out) { (void)v; return ORIG_VFS->xRandomness(ORIG_VFS, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return ORIG_VFS->xSleep(ORIG_VFS, us); }
static int v_current_time(sqlite3_vfs *v, double *out) { (void)v; return ORIG_VFS->xCurrentTime(ORIG_VFS, out); }
static int v_get_last_error(sqlite3_vfs *v, int n, char *out) { (void)v; return ORIG_VFS->xGetLastError(ORIG_VFS, n, out); }
static int v_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return ORIG_VFS->xCurrentTimeInt64(ORIG_VFS, out); }
static int v_set_system_call(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn) { (void)v; return ORIG_VFS->xSetSystemCall(ORIG_VFS, name, fn); }
static sqlite3_syscall_ptr v_get_system_call(sqlite3_vfs *v, const char *name) { (void)v; return ORIG_VFS->xGetSystemCall(ORIG_VFS, name); }
static const char *v_next_system_call(sqlite3_vfs *v, const char *name) { (void)v; return ORIG_VFS->xNextSystemCall(ORIG_VFS, name); }

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static void register_vfs(void) {
    register_rc = sqlite3_initialize();
    if (register_rc != SQLITE_OK) return;
    sqlite3_vfs *orig = sqlite3_vfs_find(NULL);
    if (!orig) { register_rc = SQLITE_ERROR; return; }
    if (orig->iVersion < 3) { register_rc = SQLITE_ERROR; return; }
    logit_vfs = (sqlite3_vfs){
        3, (int)sizeof(LogitFile) + orig->szOsFile, orig->mxPathname, NULL, LOGIT_CATALOG_VFS_NAME, orig,
        v_open, v_delete, v_access, v_full_pathname, v_dl_open, v_dl_error, v_dl_sym, v_dl_close,
        v_randomness, v_sleep, v_current_time, v_get_last_error, v_current_time_int64,
        v_set_system_call, v_get_system_call, v_next_system_call,
    };
    register_rc = sqlite3_vfs_register(&logit_vfs, 1);
}

int logit_catalog_vfs_register(void) {
    pthread_once(&register_once, register_vfs);
    return register_rc;
}

// MARK: creation

int logit_catalog_create(const char *path, char *err, size_t err_len) {
    int rc = logit_catalog_vfs_register();
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "registering the %s VFS failed (SQLite code %d)", LOGIT_CATALOG_VFS_NAME, rc);
        return rc;
    }
    sqlite3 *db = NULL;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, LOGIT_CATALOG_VFS_NAME);
    if (rc == SQLITE_OK) {
        // Reserve bytes can only be chosen before the first page exists.
        int reserve = LOGIT_CATALOG_RESERVE;
        rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
    }
    char *message = NULL;
    if (rc == SQLITE_OK) {
        char sql[160];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA journal_mode = WAL;", (int)LOGIT_CATALOG_APPLICATION_ID);
        rc = sqlite3_exec(db, sql, NULL, NULL, &message);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "creating catalog %s: %s", path, message ? message : (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    }
    sqlite3_free(message);
    int close_rc = sqlite3_close(db);
    if (rc == SQLITE_OK && close_rc != SQLITE_OK) {
        snprintf(err, err_len, "closing new catalog %s: %s", path, sqlite3_errstr(close_rc));
        rc = close_rc;
    }
    return rc;
}
