import Foundation
import LogitCore
import ShardFormat

/// The shard reader on arbitrary files, through both access paths: open, verify every block,
/// decode every sequence. Errors are fine; crashes, hangs and runaway allocation are not.
let path = FileManager.default.temporaryDirectory.path + "/logitd-fuzz-shard-\(getpid()).lgs"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzShard(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: start, count: count)) else { return 0 }
    for access in [ShardReader.Access.mmap, .pread] {
        for reader in [try? ShardReader(sealedAt: path, access: access),
                       try? ShardReader(openAt: path, committedLength: UInt64(count), access: access)] {
            guard let reader else { continue }
            for block in 0..<reader.blockCount {
                guard (try? reader.verifyBlock(block)) != nil else { continue }
                for ordinal in 0..<reader.blockInfo(block).sequenceCount {
                    if let record = try? reader.sequence(block: block, ordinal: ordinal) {
                        precondition(record.positions >= 1 && record.ids.count == record.logprobs.count)
                    }
                }
            }
        }
    }
    return 0
}
