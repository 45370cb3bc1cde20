package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tickfan/tickfan/client"
)

// The latency hft aims for, publish to receive.
const (
	hftTargetP50Us = 30
	hftTargetP99Us = 100
)

// runHFT is the colocated trading case: TCP msgpack subscribers of one
// topic and one publisher on its own TCP connection at a fixed rate, run
// once for each count of subscribers in HFTConns (1 and 10 by default),
// one result each. Around the cases it measures the baselines, with
// nothing else running, once before the first case and once after the
// last: a ping-pong between two loopback sockets inside the bench (the
// floor of a round trip on this machine), one with the echo server at
// --echo when there is one (the same, across the server's core), and the
// ping command's round trip to the server. Every result carries both
// measurements, so that each case is read against the floor of its own
// run; the results are emitted once the second measurement is done.
func runHFT(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	before, notes, err := measureBaselines(ctx, c)
	if err != nil {
		return err
	}
	var rs []Result
	for _, n := range c.HFTConns {
		cc := *c
		cc.Conns = n
		c.logf("hft: %d subscribers", n)
		var r Result
		if r, err = hftCase(ctx, &cc, tgt); err != nil {
			err = fmt.Errorf("%d subscribers: %w", n, err)
		}
		if r.Scenario != "" {
			rs = append(rs, r)
		}
		if err != nil {
			break
		}
	}
	after, afterNotes, aerr := measureBaselines(ctx, c)
	for _, r := range rs {
		fig := &HFTFigures{Baselines: before, TargetP50Us: hftTargetP50Us, TargetP99Us: hftTargetP99Us}
		if aerr == nil {
			fig.After = &after
		}
		fig.MeetsTarget = r.KeepsUp && r.Latency.P50 <= hftTargetP50Us && r.Latency.P99 <= hftTargetP99Us
		r.HFT = fig
		r.Notes = append(r.Notes, notes...)
		for _, n := range afterNotes {
			r.Notes = append(r.Notes, n+" (after the cases)")
		}
		if aerr != nil {
			r.Notes = append(r.Notes, "baselines after the cases not measured: "+aerr.Error())
		}
		if eerr := emit(r); err == nil {
			err = eerr
		}
	}
	return err
}

// hftCase runs the load with c.Conns subscribers.
func hftCase(ctx context.Context, c *Config, tgt *target) (Result, error) {
	s, err := openSession(ctx, c, tgt, c.Conns, 0)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	return s.measure(ctx, c.Rate, nil)
}

// Round trips of each baseline (after some to warm up).
const (
	loopbackRounds = 20000
	echoRounds     = 20000
	pingRounds     = 2000
)

// measureBaselines measures the round trips of Baselines. A server ping
// that fails is a note (the server's --cmd-rate may not allow it); an
// echo server that was asked for and fails is an error.
func measureBaselines(ctx context.Context, c *Config) (Baselines, []string, error) {
	var b Baselines
	var notes []string
	rtt, err := loopbackRTT(ctx, loopbackRounds)
	if err != nil {
		return b, nil, fmt.Errorf("loopback baseline: %w", err)
	}
	b.LoopbackRTT = summarize(rtt)
	if c.Echo != "" {
		rtt, err := echoRTT(ctx, c.Echo, echoRounds)
		if err != nil {
			return b, nil, fmt.Errorf("echo baseline (--echo %s, a tickfan bench echo): %w", c.Echo, err)
		}
		e := summarize(rtt)
		b.EchoRTT = &e
	}
	if ping, err := serverPingRTT(ctx, c.TCPAddr, pingRounds); err != nil {
		notes = append(notes, "server ping round trip not measured: "+err.Error())
	} else {
		b.ServerPingRTT = summarize(ping)
	}
	echo := "-"
	if b.EchoRTT != nil {
		echo = fmt.Sprint(b.EchoRTT.P50)
	}
	c.logf("hft: round trip p50 µs: loopback %d, echo %s, server ping %d", b.LoopbackRTT.P50, echo, b.ServerPingRTT.P50)
	return b, notes, nil
}

// rttSize is the message of the ping-pong baselines: about a small pub.
const rttSize = 64

// loopbackRTT times n round trips of a 64-byte message between two TCP
// sockets on 127.0.0.1, one echoing, both in this process.
func loopbackRTT(ctx context.Context, n int) (*hdrhistogram.Histogram, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, rttSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	return echoRTT(ctx, ln.Addr().String(), n)
}

// echoRTT times n round trips of a 64-byte message to the echo server at
// addr, one at a time, after a few hundred to warm up.
func echoRTT(ctx context.Context, addr string, n int) (*hdrhistogram.Histogram, error) {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := newHistogram()
	buf := make([]byte, rttSize)
	const warm = 500
	for i := 0; i < n+warm && ctx.Err() == nil; i++ {
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= warm {
			recordLatency(h, int64(time.Since(t)))
		}
	}
	return h, nil
}

// serverPingRTT times n ping commands to the server over TCP msgpack, one
// at a time. The server's --cmd-rate must allow them.
func serverPingRTT(ctx context.Context, addr string, n int) (*hdrhistogram.Histogram, error) {
	c, err := client.Dial(ctx, client.Config{Proto: client.TCP, Addr: addr, DialTimeout: dialTimeout})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := newHistogram()
	const warm = 100
	var cmd []byte
	for i := 0; i < n+warm && ctx.Err() == nil; i++ {
		cmd = client.TCP.AppendPing(cmd[:0], uint64(i+1)) // encoded before the clock starts
		t := time.Now()
		if err := c.Write(cmd); err != nil {
			return nil, err
		}
		var m client.Message
		for {
			if m, err = c.Next(); err != nil {
				return nil, err
			}
			if m.Kind != client.KindPing { // else a heartbeat crossed our ping
				break
			}
		}
		d := time.Since(t)
		if m.Err != nil {
			return nil, fmt.Errorf("ping %d: %v (the server's --cmd-rate must allow %d commands a second)", i+1, m.Err, n)
		}
		if i >= warm {
			recordLatency(h, int64(d))
		}
	}
	return h, nil
}
