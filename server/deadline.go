package server

import (
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
	"github.com/tickfan/tickfan/wheel"
)

// connTimerFired hands the connection whose timer fired to its loop. The
// wheel's goroutine calls it; the timer is the conn's timer field, so the
// conn is found from it without a closure per connection.
func connTimerFired(t *wheel.Timer) {
	c := (*conn)(unsafe.Add(unsafe.Pointer(t), -int(unsafe.Offsetof(conn{}.timer))))
	c.l.expire(c)
}

// armTimer sets the wheel timer to the nearest deadline after now.
func (c *conn) armTimer(now int64) {
	if c.state == stClosed {
		return
	}
	cfg := &c.l.srv.cfg
	var next int64
	if c.lingering {
		next = c.nextPing
	} else if c.state == stHandshake {
		next = c.begun + int64(cfg.HandshakeTimeout)
	} else {
		next = min(c.nextPing, c.lastSeen+int64(cfg.IdleTimeout))
		if c.claims != nil {
			next = min(next, c.tokenExp)
		}
		if c.slow {
			next = min(next, c.slowSince+int64(cfg.SlowTimeout))
		}
		if c.begun != 0 {
			next = min(next, c.begun+int64(cfg.MessageTimeout))
		}
	}
	c.l.srv.wheel.Add(&c.timer, time.Duration(max(next-now, 0)))
}

// onTimer runs on the loop when the connection's wheel timer fired: it
// closes on a passed deadline, sends a heartbeat when due, and re-arms.
func (c *conn) onTimer() {
	if c.state == stClosed {
		return
	}
	cfg := &c.l.srv.cfg
	now := c.l.srv.wheel.NowNano()
	if c.closing {
		if c.lingering && now >= c.nextPing {
			_ = c.t.Close() // the client had its time to read and go
		} else if c.lingering {
			c.armTimer(now)
		}
		return
	}
	switch {
	case c.state == stHandshake:
		if now-c.begun >= int64(cfg.HandshakeTimeout) {
			c.l.srv.metrics.handshakeTimeouts.Inc()
			c.closing = true
			_ = c.t.Close()
			return
		}
	case c.claims != nil && now >= c.tokenExp:
		c.closeWith(codec.DisconnectTokenExpired)
		return
	case c.begun != 0 && now-c.begun >= int64(cfg.MessageTimeout):
		c.closeWith(codec.DisconnectBadRequest.WithReason("a message was not finished within the message timeout"))
		return
	case now-c.lastSeen >= int64(cfg.IdleTimeout):
		c.closeWith(codec.DisconnectIdle)
		return
	case c.slow && now-c.slowSince >= int64(cfg.SlowTimeout):
		c.closeWith(codec.DisconnectSlowClient)
		return
	case now >= c.nextPing:
		if c.kind == reactor.WebSocket {
			c.push(codec.AppendWSFrame(nil, ws.OpPing, nil))
		} else {
			c.push(codec.AppendPingMessage(nil))
		}
		c.nextPing = now + int64(cfg.Heartbeat)
	}
	c.armTimer(now)
}
