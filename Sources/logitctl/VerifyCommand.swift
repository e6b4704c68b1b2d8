import ArgumentParser
import Catalog
import Foundation

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read every block: checksums, decoded invariants, catalog ↔ file agreement. Exit 0 only when clean.")

    @Argument(help: "Cache directory.") var cacheDir: String
    @Option(help: "Only this dataset.") var dataset: String?
    @Flag(help: "Move shards with problems into quarantine/ (needs the writer lock: stop logitd first).") var quarantine = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        do {
            guard FileManager.default.fileExists(atPath: cacheDir + "/catalog.sqlite") else {
                throw StoreError.notFound("\(cacheDir) is not a logitd cache (no catalog.sqlite)")
            }
            let store: CacheStore
            do {
                store = try CacheStore(directory: cacheDir, mode: quarantine ? .write : .readOnly)
            } catch {
                // A catalog too damaged to open: still say what is wrong with its files, page by page.
                switch error {
                case .corrupt, .catalog: break
                default: throw error
                }
                let audit = CatalogFileAudit.run(catalogPath: cacheDir + "/catalog.sqlite")
                let problems = ["catalog.sqlite: cannot be opened: \(error)"] + audit.problems.map(\.description)
                if json {
                    let object: [String: Any] = ["clean": false, "problems": problems, "catalog_pages": audit.pagesChecked,
                                                 "catalog_frames": audit.framesChecked]
                    print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                } else {
                    for p in problems { print("problem: \(p)") }
                    print("\(problems.count) problem(s): the catalog could not be opened; \(audit.pagesChecked) catalog pages, \(audit.framesChecked) WAL frames checked")
                }
                throw ExitStatus.problems
            }
            let showProgress = stderrIsTerminal && !json
            let result = try CacheVerifier(store: store).verify(dataset: dataset) { done, total in
                guard showProgress else { return }
                let width = 30, filled = total == 0 ? width : done * width / total
                FileHandle.standardError.write(Data("\rverifying [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) shards".utf8))
            }
            if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
            var moved: [String] = []
            if quarantine {
                for id in result.badShards { if let path = try store.quarantineShard(id: id, reason: "verify found problems") { moved.append(path) } }
            }
            if json {
                let object: [String: Any] = ["clean": result.isClean, "shards": result.shardsChecked, "blocks": result.blocksChecked,
                                             "sequences": result.sequencesChecked, "problems": result.problems.map(\.description),
                                             "quarantined": moved, "catalog_pages": result.catalogPagesChecked,
                                             "catalog_frames": result.catalogFramesChecked]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                for p in result.problems { print("problem: \(p)") }
                for m in moved { print("quarantined: \(m)") }
                print("\(result.isClean ? "clean" : "\(result.problems.count) problem(s)"): \(result.shardsChecked) shards, \(result.blocksChecked) blocks, \(result.sequencesChecked) sequences, \(result.catalogPagesChecked) catalog pages, \(result.catalogFramesChecked) WAL frames checked")
            }
            if !result.isClean { throw ExitStatus.problems }
        } catch let code as ExitCode {
            throw code
        } catch {
            throw fail(error)
        }
    }
}
