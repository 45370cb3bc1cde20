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
// topic and one publisher on its own TCP connection at a fixed rate. Before
// the load it measures two baselines, with nothing else running: a
// ping-pong between two loopback sockets inside the bench (the floor of a
// round trip on this machine) and the ping command's round trip to the
// server.
func runHFT(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	fig := &HFTFigures{TargetP50Us: hftTargetP50Us, TargetP99Us: hftTargetP99Us}
	var notes []string
	rtt, err := loopbackRTT(ctx, 20000)
	if err != nil {
		return fmt.Errorf("loopback baseline: %w", err)
	}
	fig.LoopbackRTT = summarize(rtt)
	if ping, err := serverPingRTT(ctx, c.TCPAddr, 2000); err != nil {
		notes = append(notes, "server ping round trip not measured: "+err.Error())
	} else {
		fig.ServerPingRTT = summarize(ping)
	}
	c.logf("hft: loopback round trip p50 %d µs, server ping p50 %d µs", fig.LoopbackRTT.P50, fig.ServerPingRTT.P50)

	s, err := openSession(ctx, c, tgt, c.Conns, 0)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.measure(ctx, c.Rate, nil)
	r.HFT = fig
	r.Notes = append(r.Notes, notes...)
	fig.MeetsTarget = r.KeepsUp && r.Latency.P50 <= hftTargetP50Us && r.Latency.P99 <= hftTargetP99Us
	if eerr := emit(r); err == nil {
		err = eerr
	}
	return err
}

// rttSize is the message of the loopback ping-pong: about a small pub.
const rttSize = 64

// loopbackRTT times n round trips of a 64-byte message between two TCP
// sockets on 127.0.0.1, one echoing, after a few hundred to warm up.
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
	c, err := net.DialTimeout("tcp", ln.Addr().String(), dialTimeout)
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
