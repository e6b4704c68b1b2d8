import Foundation
import LogitCore
#if canImport(Glibc)
import Glibc
#endif

/// The few POSIX file operations the store's durability rests on, with errors that name the path.
enum FileOps {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    static func size(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : nil
    }

    static func makeDirectory(_ path: String) throws(StoreError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .io("creating directory \(path): \(error.localizedDescription)")
        }
    }

    /// Makes a directory's entries (new, renamed files) durable.
    static func fsyncDirectory(_ path: String) throws(StoreError) {
        do { try fsyncPath(path) } catch { throw StoreError(io: error) }
    }

    static func rename(_ from: String, _ to: String) throws(StoreError) {
        guard Glibc.rename(from, to) == 0 else { throw StoreError(io: SystemError("renaming \(from) to \(to)")) }
    }

    /// Regular files directly below `directory` (names only), sorted.
    static func files(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { name in
            var st = stat()
            return stat(directory + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }.sorted()
    }

    static func subdirectories(of directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { name in
            var st = stat()
            return stat(directory + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }.sorted()
    }
}

/// An exclusive advisory lock on `<cache>/LOCK`: one writer per cache directory. The kernel drops
/// it when the process dies, so a SIGKILLed daemon never leaves a stale lock behind.
final class DirectoryLock: Sendable {
    let fd: Int32

    init(directory: String) throws(StoreError) {
        let path = directory + "/LOCK"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(io: SystemError("opening \(path)")) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw .locked("cache directory \(directory) is in use by another writer (lock held on \(path))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        self.fd = fd
    }

    deinit { close(fd) }
}
