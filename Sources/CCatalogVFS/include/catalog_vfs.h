#ifndef CATALOG_VFS_H
#define CATALOG_VFS_H

/// The logitd catalog's page checksums (schema/CATALOG_FILE.md).
///
/// A catalog file reserves the last 8 bytes of every page. A small SQLite VFS shim, registered
/// as the process's default VFS, fills them with a checksum of the rest of the page whenever a
/// page is written (main database file and WAL frames) and checks them whenever a page is read,
/// failing the read with SQLITE_IOERR_DATA on a mismatch. Only files marked as logitd catalogs
/// (reserve bytes = 8 and application_id = LOGIT_CATALOG_APPLICATION_ID) are touched; every
/// other file passes straight through to the default unix VFS.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bytes reserved at the end of every page for the checksum.
#define LOGIT_CATALOG_RESERVE 8
/// `PRAGMA application_id` of a catalog with page checksums ("LGC2").
#define LOGIT_CATALOG_APPLICATION_ID 0x4C474332
/// Name of the shim VFS.
#define LOGIT_CATALOG_VFS_NAME "logit-catalog"

/// Registers the shim as the default VFS (once per process; later calls are no-ops).
/// Returns an SQLite result code.
int logit_catalog_vfs_register(void);

/// The checksum stored in the last 8 bytes of a page (little-endian): XXH3-64 of the first
/// `page_size - 8` bytes, seeded.
uint64_t logit_catalog_page_checksum(const uint8_t *page, size_t page_size);

/// 1 when the page's stored checksum matches its content.
int logit_catalog_page_checksum_ok(const uint8_t *page, size_t page_size);

/// SQLite's WAL checksum (fileformat2 §4.1), continuing from `s[0], s[1]`. `big_endian`
/// selects the word order the WAL header's magic number names. `n` must be a multiple of 8.
void logit_catalog_wal_checksum(int big_endian, const uint8_t *data, size_t n, uint32_t s[2]);

/// Creates an empty catalog file at `path` (which must not exist or be empty): reserve bytes,
/// application id, WAL mode. Returns an SQLite result code; on failure writes a message to `err`.
int logit_catalog_create(const char *path, char *err, size_t err_len);

/// The most recent checksum failure seen by the shim ("<file> page N: …"), copied into `buf`
/// (NUL-terminated). Returns the number of failures seen so far in this process.
uint64_t logit_catalog_last_failure(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
