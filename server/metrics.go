package server

import (
	"strconv"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// that several servers can live in one process (tests do). Counters that
// move per delivery are kept by the loops and read at scrape time.
type metrics struct {
	reg *prometheus.Registry

	connections       *prometheus.GaugeVec
	subscriptions     prometheus.Gauge
	publications      prometheus.Counter
	handshakeFailures prometheus.Counter
	handshakeTimeouts prometheus.Counter
	slowClients       prometheus.Gauge
	inboundRefusals   prometheus.Counter
	inputPaused       prometheus.Gauge
	acceptErrors      prometheus.Counter
	lags              prometheus.Counter
	resumes           prometheus.Counter
	resets            prometheus.Counter
	recovered         prometheus.Counter
	inboxOverflows    prometheus.Counter
	errorsByCode      *prometheus.CounterVec
	closesByCode      *prometheus.CounterVec
	commandsByOp      *prometheus.CounterVec
	rejectedConns     *prometheus.CounterVec

	// Counters of the labels the protocol knows, resolved once: a command
	// on the loop then touches one atomic, not the vector's label hash and
	// the read lock it shares with every loop. Read-only after newMetrics.
	byOp    map[string]prometheus.Counter
	byError map[int]prometheus.Counter
	byClose map[int]prometheus.Counter
	byKind  [2]prometheus.Gauge // tickfan_connections by reactor.Kind
	// connsHTTP is tickfan_connections{transport="http"}: connections of
	// the HTTP listener (not the admin one), counted in MaxConns.
	connsHTTP prometheus.Gauge
}

// Labels resolved up front (PROTOCOL.md ops, error and close codes).
var (
	protocolOps    = []string{"sub", "unsub", "pull", "pub", "ping", "auth", "refresh", "other"}
	protocolErrors = []int{400, 401, 403, 404, 409, 410, 413, 429, 500, 503}
	protocolCloses = codec.DisconnectCodes()
	// Limits a connection is refused for (admit, ipLimits.admit).
	rejectReasons = []string{"max_conns", "per_ip", "ip_rate"}
)

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tickfan_connections", Help: "Open connections by transport: ws (counted after the upgrade), tcp, and http (the publish API's listener).",
	}, []string{"transport"})
	m.subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tickfan_subscriptions", Help: "Subscriptions held by connected clients.",
	})
	m.publications = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_publications_total", Help: "Publications accepted from producers.",
	})
	m.handshakeFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_ws_handshake_failures_total", Help: "WebSocket upgrade requests refused (bad request, wrong path).",
	})
	m.handshakeTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_ws_handshake_timeouts_total", Help: "Connections closed for not finishing the WebSocket upgrade in time.",
	})
	m.acceptErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_accept_errors_total", Help: "Failed accepts on the WebSocket and TCP listeners (out of file descriptors, mostly); accepting resumes after a pause.",
	})
	m.inputPaused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tickfan_input_paused_clients", Help: "Connections whose commands wait unread because their outbox is over its budget.",
	})
	m.inboundRefusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_inbound_budget_closes_total", Help: "Connections closed because unfinished client messages held by the server passed --inbound-bytes.",
	})
	m.slowClients = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tickfan_slow_clients", Help: "Connections over their outbox high-water mark now.",
	})
	m.lags = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_lags_total", Help: "lag messages sent: a topic stopped being pushed to a slow client.",
	})
	m.resumes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_resumes_total", Help: "Lagged topics resumed once the client's outbox drained.",
	})
	m.resets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_resets_total", Help: "reset messages sent: a client's continuity of a topic was broken.",
	})
	m.recovered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_recovered_total", Help: "Subscriptions with since that recovered without a break.",
	})
	m.inboxOverflows = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tickfan_inbox_overflows_total", Help: "Publications a loop's full inbox refused: the loop was that far behind, and continued their topics' subscribers from history instead (reset where history no longer held it).",
	})
	m.errorsByCode = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickfan_errors_total", Help: "Error replies sent, by PROTOCOL.md code.",
	}, []string{"code"})
	m.closesByCode = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickfan_closes_total", Help: "Connections closed by the server, by close code.",
	}, []string{"code"})
	m.commandsByOp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickfan_commands_total", Help: "Client commands received, by op.",
	}, []string{"op"})
	m.rejectedConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickfan_rejected_connections_total", Help: "Connections refused, by limit: max_conns, per_ip, ip_rate (WebSocket and TCP with 4006; HTTP closed as accepted, max_conns only).",
	}, []string{"reason"})
	m.byOp = make(map[string]prometheus.Counter, len(protocolOps))
	for _, op := range protocolOps {
		m.byOp[op] = m.commandsByOp.WithLabelValues(op)
	}
	m.byError = resolve(m.errorsByCode, protocolErrors)
	m.byClose = resolve(m.closesByCode, protocolCloses)
	// Every series of a known label set exists at 0 from the start, so a
	// query or an alert on it has a value before the first event.
	for _, k := range []reactor.Kind{reactor.WebSocket, reactor.TCP} {
		m.byKind[k] = m.connections.WithLabelValues(k.String())
	}
	m.connsHTTP = m.connections.WithLabelValues("http")
	for _, r := range rejectReasons {
		m.rejectedConns.WithLabelValues(r)
	}
	sum := func(get func(l *loop) uint64) func() float64 {
		return func() float64 {
			var n uint64
			for _, l := range s.loops {
				n += get(l)
			}
			return float64(n)
		}
	}
	m.reg.MustRegister(
		m.connections, m.subscriptions, m.publications, m.handshakeFailures,
		m.handshakeTimeouts, m.slowClients, m.inboundRefusals, m.inputPaused, m.acceptErrors, m.lags, m.resumes, m.resets, m.recovered,
		m.inboxOverflows, m.errorsByCode, m.closesByCode, m.commandsByOp, m.rejectedConns,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickfan_queued_bytes", Help: "Bytes queued for clients: their outboxes and what the engine holds for their sockets, bounded by --queue-memory.",
		}, func() float64 { return float64(s.queuedBytes(nil)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickfan_inbound_bytes", Help: "Bytes of client input held unhandled: unfinished messages, and commands of clients over their outbox budget.",
		}, func() float64 { return float64(s.inbound.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickfan_deliveries_total", Help: "Publications queued to subscribers.",
		}, sum(func(l *loop) uint64 { return l.stats.deliveries.Load() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickfan_bytes_out_total", Help: "Bytes written to client sockets (frames, replies included).",
		}, sum(func(l *loop) uint64 { return l.stats.bytesOut.Load() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickfan_conflated_total", Help: "Unsent publications of conflated topics replaced by a newer one.",
		}, sum(func(l *loop) uint64 { return l.stats.conflated.Load() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickfan_topics", Help: "Topics held by the topic engine.",
		}, func() float64 { return float64(s.engine.Topics()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if s.cfg.Redis != "" {
		m.reg.MustRegister(redisMetrics(s)...)
	}
	return m
}

func (m *metrics) conns(k reactor.Kind) prometheus.Gauge { return m.byKind[k] }

// resolve makes the counter of each code ahead of use.
func resolve(vec *prometheus.CounterVec, codes []int) map[int]prometheus.Counter {
	out := make(map[int]prometheus.Counter, len(codes))
	for _, code := range codes {
		out[code] = vec.WithLabelValues(strconv.Itoa(code))
	}
	return out
}

func (m *metrics) errors(code int) prometheus.Counter {
	if c, ok := m.byError[code]; ok {
		return c
	}
	return m.errorsByCode.WithLabelValues(strconv.Itoa(code))
}

func (m *metrics) closes(code int) prometheus.Counter {
	if c, ok := m.byClose[code]; ok {
		return c
	}
	return m.closesByCode.WithLabelValues(strconv.Itoa(code))
}

// commands counts a command; ops outside the protocol share one label so a
// client cannot grow the metric without bound.
func (m *metrics) commands(op string) prometheus.Counter {
	if c, ok := m.byOp[op]; ok {
		return c
	}
	return m.byOp["other"]
}
