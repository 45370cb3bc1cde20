package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// httpPublisher publishes open loop over HTTP, each publication its own
// POST: publication g (counted over the whole run) is for topic
// g % len(topics) and is due at a time fixed in advance, as with the TCP
// publisher. Its payload is the JSON array [due, sent, "xxx..."]: due is
// the scheduled time, sent the clock just before the request goes out
// (both ns on the run's clock), so a subscriber can tell the server's
// part of the latency from the publisher's lateness.
//
// A pacing goroutine (run) hands each publication when due to one of a
// fixed set of workers, each with a keep-alive connection of its own; when
// every worker is busy it waits, and the lateness shows in the latency
// from due and in PubLate rather than as fewer publications.
type httpPublisher struct {
	pubTally
	clock   *clock
	pacer   *pacer
	client  *http.Client
	url     string
	dialect pubDialect
	size    int

	jobs    chan pubJob
	workers sync.WaitGroup

	next     uint64           // the next publication's index g; run's
	inWindow map[string]int64 // publications due in the window, per topic; run's

	mu   sync.Mutex // guards late
	late *hdrhistogram.Histogram

	status atomic.Int64 // the first refusal's HTTP status
}

// pubDialect is how one server's HTTP publish API is spoken.
type pubDialect struct {
	// topicKey and dataKey name the body's fields: {"<topicKey>":"name","<dataKey>":[...]}.
	topicKey, dataKey string
	// header and value authenticate the request.
	header, value string
	// seqKey is the key of the position in the answer ("s", "offset").
	seqKey string
	// errKey, when set, marks a refusal in an answer of status 200.
	errKey string
}

// tickfanPub is PROTOCOL.md's POST /api/publish.
func tickfanPub(apiKey string) pubDialect {
	return pubDialect{topicKey: "t", dataKey: "d", header: "Authorization", value: "apikey " + apiKey, seqKey: "s"}
}

// centrifugoPub is Centrifugo v5's HTTP API publish, which answers 200
// with {"error":{...}} when it refuses and {"result":{"offset":N,...}}
// (the offset only with history on) when it does not.
func centrifugoPub(apiKey string) pubDialect {
	return pubDialect{topicKey: "channel", dataKey: "data", header: "X-API-Key", value: apiKey, seqKey: "offset", errKey: `"error"`}
}

type pubJob struct {
	ti  int
	due int64
}

// newHTTPPublisher starts inflight workers that POST to url.
func newHTTPPublisher(cfg *Config, clk *clock, topics []string, url string, d pubDialect) (*httpPublisher, error) {
	pc, err := newPacer(cfg.Pace, clk)
	if err != nil {
		return nil, err
	}
	inflight := max(cfg.PubInflight, 1)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxConnsPerHost:     inflight,
		MaxIdleConns:        inflight,
		MaxIdleConnsPerHost: inflight,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	p := &httpPublisher{
		pubTally: newPubTally("HTTP publisher", topics),
		clock:    clk, pacer: pc, url: url, dialect: d, size: cfg.Size,
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		jobs:     make(chan pubJob),
		inWindow: map[string]int64{},
		late:     newHistogram(),
	}
	for range inflight {
		p.workers.Add(1)
		go p.work()
	}
	return p, nil
}

// run publishes at rate publications a second (over all topics), the k-th
// of this call due at start + k/rate, until the next due time reaches
// stop; times are on the clock. Publications due in [winStart, winEnd)
// are counted per topic for the expected deliveries.
func (p *httpPublisher) run(ctx context.Context, rate float64, start, stop, winStart, winEnd int64) error {
	interval := 1e9 / rate
	for k := int64(0); ; k++ {
		due := start + int64(float64(k)*interval)
		if due >= stop || ctx.Err() != nil {
			return nil
		}
		p.pacer.wait(due)
		ti := int(p.next % uint64(len(p.topics)))
		select {
		case p.jobs <- pubJob{ti: ti, due: due}:
		case <-ctx.Done():
			return nil
		}
		if due >= winStart && due < winEnd {
			p.inWindow[p.topics[ti]]++
		}
		p.next++
		p.sent.Add(1)
	}
}

func (p *httpPublisher) work() {
	defer p.workers.Done()
	var answer []byte
	for j := range p.jobs {
		sent := p.clock.now()
		body := p.appendBody(make([]byte, 0, p.size+64), j.ti, j.due, sent)
		p.mu.Lock()
		recordLatency(p.late, sent-j.due)
		p.mu.Unlock()
		var err error
		answer, err = p.post(body, answer[:0])
		if err != nil {
			p.errs.Add(1)
			p.noteErr(err.Error())
			continue
		}
		p.acked.Add(1)
		if s, ok := answerSeq(answer, p.dialect.seqKey); ok {
			ls := &p.lastSeq[j.ti]
			for {
				old := ls.Load()
				if s <= old || ls.CompareAndSwap(old, s) {
					break
				}
			}
		}
	}
}

// post sends one publication and returns the answer's body, appended to
// buf; a status other than 200, or a refusal in a 200, is an error.
func (p *httpPublisher) post(body, buf []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return buf, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(p.dialect.header, p.dialect.value)
	resp, err := p.client.Do(req)
	if err != nil {
		return buf, fmt.Errorf("publish: %w", err)
	}
	w := bytes.NewBuffer(buf)
	_, err = io.Copy(w, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	buf = w.Bytes()
	if resp.StatusCode != http.StatusOK {
		p.status.CompareAndSwap(0, int64(resp.StatusCode))
		return buf, fmt.Errorf("publish: %s: %s", resp.Status, strings.TrimSpace(string(buf)))
	}
	if err != nil {
		return buf, fmt.Errorf("publish: reading the answer: %w", err)
	}
	if p.dialect.errKey != "" && bytes.Contains(buf, []byte(p.dialect.errKey)) {
		return buf, fmt.Errorf("publish refused: %s", strings.TrimSpace(string(buf)))
	}
	return buf, nil
}

// appendBody appends {"<topic>":"name","<data>":[due,sent,"x..."]}, the
// payload padded to the publisher's size (when the numbers leave room).
func (p *httpPublisher) appendBody(dst []byte, ti int, due, sent int64) []byte {
	d := &p.dialect
	dst = append(dst, `{"`...)
	dst = append(dst, d.topicKey...)
	dst = append(dst, `":"`...)
	dst = append(dst, p.topics[ti]...) // bench topic names need no escaping
	dst = append(dst, `","`...)
	dst = append(dst, d.dataKey...)
	dst = append(dst, `":`...)
	dst = appendPayloadJSON(dst, p.size, due, sent)
	return append(dst, '}')
}

// appendPayloadJSON appends [due,sent,"x..."] of size bytes, or as short
// as the two numbers allow.
func appendPayloadJSON(dst []byte, size int, due, sent int64) []byte {
	at := len(dst)
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, due, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, sent, 10)
	dst = append(dst, `,"`...)
	pad := size - (len(dst) - at) - 2
	for range pad {
		dst = append(dst, 'x')
	}
	return append(dst, `"]`...)
}

// payloadDueSent reads due and sent from the JSON payload [due, sent, ...];
// ok is false for a payload of another shape.
func payloadDueSent(d []byte) (due, sent int64, ok bool) {
	if len(d) < 4 || d[0] != '[' {
		return 0, 0, false
	}
	u, i, ok := jsonUintAt(d, 1)
	if !ok || i >= len(d) || d[i] != ',' {
		return 0, 0, false
	}
	v, _, ok := jsonUintAt(d, i+1)
	return int64(u), int64(v), ok
}

// jsonUintAt reads the unsigned integer at b[i], after any blanks.
func jsonUintAt(b []byte, i int) (v uint64, next int, ok bool) {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i, i > start
}

// answerSeq finds "key":N in an answer: tickfan's {"e":..,"s":N},
// Centrifugo's {"result":{"offset":N,...}}.
func answerSeq(b []byte, key string) (uint64, bool) {
	k := `"` + key + `":`
	i := bytes.Index(b, []byte(k))
	if i < 0 {
		return 0, false
	}
	v, _, ok := jsonUintAt(b, i+len(k))
	return v, ok
}

// takeWindow returns and clears the per-topic counts of publications due
// in the window, and the send-lateness histogram. The run must be over.
func (p *httpPublisher) takeWindow() (map[string]int64, *hdrhistogram.Histogram) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, l := p.inWindow, p.late
	p.inWindow, p.late = map[string]int64{}, newHistogram()
	return w, l
}

// refusedError explains publish errors; nil when there were none.
func (p *httpPublisher) refusedError() error {
	n, first := p.failed()
	if n == 0 {
		return nil
	}
	if p.status.Load() == http.StatusUnauthorized {
		return fmt.Errorf("the server refused %d pubs (first: %s): give the server's HTTP API key (tickfan --api-key, Centrifugo api_key) to the bench with --api-key or --centrifugo-api-key", n, first)
	}
	return fmt.Errorf("%d pubs failed (first: %s)", n, first)
}

// close stops the workers (run must be over) and the idle connections.
func (p *httpPublisher) close() {
	close(p.jobs)
	p.workers.Wait()
	p.pacer.close()
	p.client.CloseIdleConnections()
}
