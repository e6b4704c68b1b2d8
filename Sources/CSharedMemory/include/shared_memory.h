#ifndef LOGITD_SHARED_MEMORY_H
#define LOGITD_SHARED_MEMORY_H

/// Linux calls Glibc's Swift module does not export (memfd_create and file seals need
/// _GNU_SOURCE). Each returns -1 and leaves errno set on failure.

/// An anonymous shared-memory file that accepts seals, closed on exec.
int logitd_memfd_create(const char *name);

/// Forbids shrinking and growing `fd` for its whole life (F_SEAL_SHRINK | F_SEAL_GROW): a
/// process that maps it can then never take a SIGBUS from pages truncated away under it.
int logitd_seal_size(int fd);

/// 1 when `fd` can never shrink (F_SEAL_SHRINK is set), 0 when it can, -1 when the file does
/// not support seals (anything but a memfd).
int logitd_size_is_sealed(int fd);

#endif
