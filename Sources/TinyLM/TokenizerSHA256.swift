/// SHA-256 (FIPS 180-4) of a whole message, for the tokenizer's content hash and corpus
/// identities. One implementation, `SHA256Stream`, serves this and the streamed checkpoint hash.
public enum TokenizerSHA256 {
    /// Lowercase hex digest of `message`.
    public static func hexDigest(_ message: [UInt8]) -> String {
        var sha = SHA256Stream()
        sha.update(message)
        return sha.finalizeHex()
    }
}
