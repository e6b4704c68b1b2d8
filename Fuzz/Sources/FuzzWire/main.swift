import LogitCore
import WireFormat

/// The ingest body decoder on arbitrary bytes: it must never crash, hang or over-allocate, and
/// whatever it accepts must re-encode to exactly the same bytes (no silent reinterpretation).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let body = UnsafeRawBufferPointer(start: start, count: count)
    // The vocab the batch must match comes from the header itself (bytes 8..<12) when present,
    // so the fuzzer can reach the per-sequence decoding.
    let vocab = count >= 12 ? Int(body.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian) : 1000
    var decoder = WireBatchDecoder()
    guard let batch = try? decoder.decode(body, expectedVocab: max(vocab, 1), maxK: 64) else { return 0 }
    switch batch {
    case .sets(let records):
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: vocab)
        records.forEach { encoder.append($0) }
        // -0.0 and NaN payloads cannot pass validation, so the bytes must match exactly.
        precondition(encoder.finish().elementsEqual(body), "accepted body does not re-encode to itself")
    case .logits(let dtype, let sequences):
        for s in sequences {
            precondition(s.rowsOffset + s.positions * vocab * dtype.byteWidth <= count, "rows outside the body")
        }
    }
    return 0
}
