import LogitCore
import WireFormat

/// One JSONL import line: parse, validate against a dataset; an accepted line must survive
/// export and re-import unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONL(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    guard let record = try? JSONLines.decode(Substring(text)) else { return 0 }
    guard (try? record.validate(vocabSize: 1000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16), logprobScale: 64)) != nil else { return 0 }
    let again = try? JSONLines.decode(Substring(JSONLines.encode(record)))
    precondition(again == record, "export of an accepted line does not import to the same record")
    return 0
}
