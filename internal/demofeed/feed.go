// Package demofeed generates a plausible market-data feed for a few symbols
// so that a newcomer running `tickfan serve --demo` sees data flow: order-book
// depth snapshots and updates, tickers, trades and one-minute klines.
//
// Topics, for each symbol S (BTCUSDT, ETHUSDT, SOLUSDT):
//
//	book.S      {"b":[[price,qty],..],"a":[[price,qty],..]}; a snapshot (k "snap")
//	            holds the whole book, an update the changed levels (qty 0 removes)
//	ticker.S    {"last":..,"bid":..,"ask":..,"open":..,"high":..,"low":..,"vol":..}
//	trade.S     {"id":..,"p":..,"q":..,"side":"buy"|"sell","ts":ms}
//	kline.1m.S  {"t":start ms,"o":..,"h":..,"l":..,"c":..,"v":..,"closed":bool}
package demofeed

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tickfan/tickfan/topic"
)

// Publisher takes publications; server.Server.Publish is one.
type Publisher func(ctx context.Context, reqs []topic.PublishRequest) ([]topic.Position, error)

// Config sets the feed's pace. The zero value is the default pace.
type Config struct {
	// Symbols to simulate. Default BTCUSDT, ETHUSDT, SOLUSDT.
	Symbols []string
	// Tick is the interval of one step of every symbol. Default 100 ms.
	Tick time.Duration
	// SnapshotEvery is how many book updates come between snapshots. Default 200.
	SnapshotEvery int
	// Seed makes the feed repeatable; 0 means random.
	Seed uint64
}

// Levels is the depth of the simulated book on each side.
const Levels = 20

// Run publishes the feed until ctx ends and returns the first publish error.
// Each tick every symbol gets a book update (a snapshot every
// SnapshotEvery), 0 to 5 trades, its kline; its ticker every 5 ticks.
func Run(ctx context.Context, cfg Config, pub Publisher) error {
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = 200
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	start := []float64{65000, 3400, 150}
	markets := make([]*Market, len(cfg.Symbols))
	for i, s := range cfg.Symbols {
		markets[i] = NewMarket(s, start[i%len(start)], rng)
	}
	t := time.NewTicker(cfg.Tick)
	defer t.Stop()
	for n := 0; ; n++ {
		now := time.Now()
		var reqs []topic.PublishRequest
		for _, m := range markets {
			reqs = m.Step(reqs, now, n%cfg.SnapshotEvery == 0, n%5 == 0)
		}
		if _, err := pub(ctx, reqs); err != nil {
			return fmt.Errorf("demo feed: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Market is one simulated symbol: a price walk, a book around it, and the
// running kline and ticker.
type Market struct {
	Symbol string
	rng    *rand.Rand
	mid    float64
	tick   float64 // price step
	bids   map[float64]float64
	asks   map[float64]float64
	trade  uint64
	kline  kline
	open   float64
	high   float64
	low    float64
	vol    float64
}

type kline struct {
	T      int64   `json:"t"`
	O      float64 `json:"o"`
	H      float64 `json:"h"`
	L      float64 `json:"l"`
	C      float64 `json:"c"`
	V      float64 `json:"v"`
	Closed bool    `json:"closed"`
}

// NewMarket starts a symbol at price mid.
func NewMarket(symbol string, mid float64, rng *rand.Rand) *Market {
	m := &Market{Symbol: symbol, rng: rng, mid: mid, tick: tickSize(mid),
		bids: map[float64]float64{}, asks: map[float64]float64{}, open: mid, high: mid, low: mid}
	m.fill()
	return m
}

func tickSize(p float64) float64 {
	return math.Pow(10, math.Floor(math.Log10(p))-4)
}

// round puts p on the price grid; dividing by a whole number keeps the
// decimal printing short (3400.1, not 3400.1000000000004).
func (m *Market) round(p float64) float64 {
	if m.tick >= 1 {
		return math.Round(p/m.tick) * m.tick
	}
	inv := math.Round(1 / m.tick)
	return math.Round(p*inv) / inv
}

// qty is a level's or trade's size: four decimals, never zero.
func (m *Market) qty() float64 { return math.Round((m.rng.ExpFloat64()+0.001)*1e4) / 1e4 }

// fill tops both sides up to Levels around the mid price.
func (m *Market) fill() {
	for i := 1; len(m.bids) < Levels; i++ {
		if p := m.round(m.mid - float64(i)*m.tick); m.bids[p] == 0 {
			m.bids[p] = m.qty()
		}
	}
	for i := 1; len(m.asks) < Levels; i++ {
		if p := m.round(m.mid + float64(i)*m.tick); m.asks[p] == 0 {
			m.asks[p] = m.qty()
		}
	}
}

// Step advances the market one tick and appends its publications to reqs.
func (m *Market) Step(reqs []topic.PublishRequest, now time.Time, snapshot, ticker bool) []topic.PublishRequest {
	// The mid walks; levels that the walk crossed are removed.
	m.mid = m.round(m.mid + m.tick*math.Round(m.rng.NormFloat64()*2))
	changed := map[bool]map[float64]float64{true: {}, false: {}}
	for p := range m.bids {
		if p >= m.mid {
			delete(m.bids, p)
			changed[true][p] = 0
		}
	}
	for p := range m.asks {
		if p <= m.mid {
			delete(m.asks, p)
			changed[false][p] = 0
		}
	}
	for i := m.rng.IntN(4); i >= 0; i-- { // a few quantities change
		bid := m.rng.IntN(2) == 0
		side := m.asks
		if bid {
			side = m.bids
		}
		for p := range side {
			side[p] = m.qty()
			changed[bid][p] = side[p]
			break
		}
	}
	before := map[bool][]float64{true: keys(m.bids), false: keys(m.asks)}
	m.fill()
	for _, bid := range []bool{true, false} {
		side := m.asks
		if bid {
			side = m.bids
		}
		for p, q := range side {
			if !slices.Contains(before[bid], p) {
				changed[bid][p] = q
			}
		}
		// keep the book Levels deep: drop the farthest levels
		for len(side) > Levels {
			ps := keys(side)
			far := ps[len(ps)-1]
			if bid {
				far = ps[0]
			}
			delete(side, far)
			changed[bid][far] = 0
		}
	}
	if snapshot {
		reqs = append(reqs, m.pub("book."+m.Symbol, book{B: levels(m.bids, true), A: levels(m.asks, false)}, true))
	} else {
		reqs = append(reqs, m.pub("book."+m.Symbol, book{B: levels(changed[true], true), A: levels(changed[false], false)}, false))
	}

	ms := now.UnixMilli()
	minute := ms - ms%60000
	if m.kline.T != 0 && m.kline.T != minute {
		m.kline.Closed = true
		reqs = append(reqs, m.pub("kline.1m."+m.Symbol, m.kline, false))
		m.kline = kline{}
	}
	if m.kline.T == 0 {
		m.kline = kline{T: minute, O: m.mid, H: m.mid, L: m.mid, C: m.mid}
	}
	for i := m.rng.IntN(6); i > 0; i-- {
		m.trade++
		side := "buy"
		if m.rng.IntN(2) == 0 {
			side = "sell"
		}
		q := m.qty()
		reqs = append(reqs, m.pub("trade."+m.Symbol, struct {
			ID   uint64  `json:"id"`
			P    float64 `json:"p"`
			Q    float64 `json:"q"`
			Side string  `json:"side"`
			TS   int64   `json:"ts"`
		}{m.trade, m.mid, q, side, ms}, false))
		m.kline.V += q
		m.vol += q
	}
	m.kline.C = m.mid
	m.kline.H, m.kline.L = max(m.kline.H, m.mid), min(m.kline.L, m.mid)
	m.high, m.low = max(m.high, m.mid), min(m.low, m.mid)
	reqs = append(reqs, m.pub("kline.1m."+m.Symbol, m.kline, false))
	if ticker {
		reqs = append(reqs, m.pub("ticker."+m.Symbol, struct {
			Last float64 `json:"last"`
			Bid  float64 `json:"bid"`
			Ask  float64 `json:"ask"`
			Open float64 `json:"open"`
			High float64 `json:"high"`
			Low  float64 `json:"low"`
			Vol  float64 `json:"vol"`
		}{m.mid, best(m.bids, true), best(m.asks, false), m.open, m.high, m.low, math.Round(m.vol*1e4) / 1e4}, false))
	}
	return reqs
}

type book struct {
	B [][2]float64 `json:"b"`
	A [][2]float64 `json:"a"`
}

func (m *Market) pub(name string, v any, snap bool) topic.PublishRequest {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // the feed's own types always marshal
	}
	return topic.PublishRequest{Topic: name, Data: data, Snap: snap}
}

func keys(side map[float64]float64) []float64 {
	ps := make([]float64, 0, len(side))
	for p := range side {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// levels lists a side best first: bids high to low, asks low to high.
func levels(side map[float64]float64, bid bool) [][2]float64 {
	ps := keys(side)
	if bid {
		slices.Reverse(ps)
	}
	out := make([][2]float64, len(ps))
	for i, p := range ps {
		out[i] = [2]float64{p, side[p]}
	}
	return out
}

func best(side map[float64]float64, bid bool) float64 {
	if l := levels(side, bid); len(l) > 0 {
		return l[0][0]
	}
	return 0
}
