import CoreMetrics
import Metrics
import Prometheus
import SharedMemory

/// The daemon's Prometheus metrics, made through swift-metrics with a factory of its own (no
/// process-global bootstrap, so several daemons can run in one test process).
final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let sequences: CoreMetrics.Counter
    let duplicates: CoreMetrics.Counter
    let positions: CoreMetrics.Counter
    let bytesIn: CoreMetrics.Counter
    let bytesOut: CoreMetrics.Counter
    let bytesShared: CoreMetrics.Counter
    /// Full shards whose rotation failed (they stay open; nothing acked is lost).
    let sealFailures: CoreMetrics.Counter
    let sharedRegions: CoreMetrics.Gauge
    let sharedMappedBytes: CoreMetrics.Gauge
    let inflightBytes: CoreMetrics.Gauge
    let inflightRequests: CoreMetrics.Gauge
    let openConnections: CoreMetrics.Gauge
    /// Connections answered 503 at once for being over `max_connections`.
    let connectionsRefused: CoreMetrics.Counter
    let ackLatency: Metrics.Timer
    let fsyncLatency: Metrics.Timer

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                                   .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                                   .milliseconds(250), .milliseconds(1000), .seconds(5)]
        self.factory = factory
        sequences = CoreMetrics.Counter(label: "logitd_sequences_total", factory: factory)
        duplicates = CoreMetrics.Counter(label: "logitd_duplicate_sequences_total", factory: factory)
        positions = CoreMetrics.Counter(label: "logitd_positions_total", factory: factory)
        bytesIn = CoreMetrics.Counter(label: "logitd_bytes_in_total", factory: factory)
        bytesOut = CoreMetrics.Counter(label: "logitd_bytes_out_total", factory: factory)
        bytesShared = CoreMetrics.Counter(label: "logitd_shared_memory_bytes_total", factory: factory)
        sealFailures = CoreMetrics.Counter(label: "logitd_seal_failures_total", factory: factory)
        sharedRegions = CoreMetrics.Gauge(label: "logitd_shared_memory_regions", factory: factory)
        sharedMappedBytes = CoreMetrics.Gauge(label: "logitd_shared_memory_mapped_bytes", factory: factory)
        inflightBytes = CoreMetrics.Gauge(label: "logitd_inflight_bytes", factory: factory)
        inflightRequests = CoreMetrics.Gauge(label: "logitd_queue_depth", factory: factory)
        openConnections = CoreMetrics.Gauge(label: "logitd_open_connections", factory: factory)
        connectionsRefused = CoreMetrics.Counter(label: "logitd_connections_refused_total", factory: factory)
        ackLatency = Metrics.Timer(label: "logitd_ack_latency_seconds", factory: factory)
        fsyncLatency = Metrics.Timer(label: "logitd_flush_latency_seconds", factory: factory)
    }

    func request(route: String, status: Int) {
        CoreMetrics.Counter(label: "logitd_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory).increment()
    }

    /// A connection closed because its client exceeded `limit` (idle, header, body_progress, request).
    func connectionClosed(reason limit: String) {
        CoreMetrics.Counter(label: "logitd_connections_closed_total", dimensions: [("limit", limit)], factory: factory).increment()
    }

    func render() -> [UInt8] { registry.emitToBuffer() }

    func record(regions: [SharedRegionInfo]) {
        sharedRegions.record(regions.count)
        sharedMappedBytes.record(regions.reduce(0) { $0 + $1.bytes })
    }
}
