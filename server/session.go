package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// handle decodes and executes one client message. Replies are queued in
// order, each before any publication its command causes.
//
// A pub that the connection's token grants never counts against
// --cmd-rate (producers are trusted and fast), only against --pub-rate
// when the operator set one; everything else is a command of the rate
// limit. The message is decoded once either way.
func (c *conn) handle(body []byte) {
	cmd := &c.l.cmd
	if c.claims != nil && len(c.claims.Pub) > 0 && !c.authPending {
		err := codec.Decode(c.format, body, cmd)
		if err == nil && cmd.Op == "pub" && auth.CanPublish(c.claims, cmd.Topic) {
			if rate := c.l.srv.cfg.PubRate; rate > 0 && !c.rareState().pubs.take(rate, c.l.srv.wheel.NowNano()) {
				c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("too many publications: at most %d per second (--pub-rate)", rate))
				return
			}
			c.run(cmd, nil)
			return
		}
		if !c.takeCommand() {
			c.tooMany(cmd)
			return
		}
		c.run(cmd, err)
		return
	}
	if !c.takeCommand() {
		_ = codec.Decode(c.format, body, cmd) // for the id, when there is one
		c.tooMany(cmd)
		return
	}
	c.exec(body)
}

// tooMany answers a command over the rate with 429, unless takeCommand
// closed the connection for it.
func (c *conn) tooMany(cmd *codec.Command) {
	if !c.closing {
		c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("too many commands: at most %d per second", c.l.srv.cfg.CmdRate))
	}
}

// takeCommand spends one of the connection's --cmd-rate tokens (commands
// and WebSocket pings alike). Over the rate it reports false; a client
// that sends a second full burst while refused is closed with 4004.
func (c *conn) takeCommand() bool {
	rate := c.l.srv.cfg.CmdRate
	if c.cmds.take(rate, c.l.srv.wheel.NowNano()) {
		return true
	}
	if int(c.cmds.refused) > rate {
		c.closeWith(CloseBadRequest, "command rate abuse")
	}
	return false
}

// exec decodes and executes one message that passed the rate limit.
func (c *conn) exec(body []byte) {
	cmd := &c.l.cmd
	if c.authPending {
		// Commands are answered in order: wait for the token check.
		r := c.rareState()
		if len(r.waiting) >= maxWaiting {
			c.closeWith(CloseBadRequest, "too many commands while a token is checked")
			return
		}
		r.waiting = append(r.waiting, append([]byte(nil), body...))
		return
	}
	c.run(cmd, codec.Decode(c.format, body, cmd))
}

// run executes a decoded command, or answers 400 when decoding failed.
func (c *conn) run(cmd *codec.Command, err error) {
	if err != nil {
		msg := err.Error()
		var ce *codec.Error
		if errors.As(err, &ce) {
			msg = ce.Msg
		}
		c.replyErr(cmd, codec.CodeBadRequest, msg)
		return
	}
	c.l.srv.metrics.commands(cmd.Op).Inc()
	switch cmd.Op {
	case "sub":
		c.cmdSub(cmd)
	case "unsub":
		c.cmdUnsub(cmd)
	case "pull":
		c.cmdPull(cmd)
	case "pub":
		c.cmdPub(cmd)
	case "ping":
		c.push(codec.AppendEmptyReply(nil, c.format, cmd.ID, cmd.HasID))
	case "auth", "refresh":
		c.cmdAuth(cmd)
	case "":
		c.replyErr(cmd, codec.CodeBadRequest, "op missing")
	default:
		c.replyErr(cmd, codec.CodeUnknownOp, fmt.Sprintf("unknown op %q", cmd.Op))
	}
}

// replyErr queues an error reply, with the message's id when it had a
// valid one (Decode keeps it even when another field is wrong).
func (c *conn) replyErr(cmd *codec.Command, code int, msg string) {
	c.l.srv.metrics.errors(code).Inc()
	c.push(codec.AppendError(nil, c.format, cmd.ID, cmd.HasID, code, msg))
}

// canRead returns 0 when the connection may subscribe to or pull the topic,
// or the error code that refuses it.
func (c *conn) canRead(name string) (int, string) {
	switch {
	case auth.CanRead(c.claims, name) && (c.claims != nil || !c.l.srv.cfg.RequireAuth):
		return 0, ""
	case c.claims == nil:
		return codec.CodeUnauthorized, "topic " + name + " needs authentication"
	}
	return codec.CodeForbidden, "token does not grant topic " + name
}

// maxWaiting bounds the messages a client may send while its token is
// checked off the loop.
const maxWaiting = 64

// cmdAuth checks a token (auth and refresh alike). A fast check (HS256)
// runs here; a slow one (RS256, ES256) runs off the loop, and the
// connection's later messages wait for its answer so replies stay in order.
func (c *conn) cmdAuth(cmd *codec.Command) {
	v := c.l.srv.verifier
	switch {
	case v == nil:
		c.replyErr(cmd, codec.CodeUnauthorized, "token authentication is not configured on this server")
		return
	case cmd.Token == "":
		c.replyErr(cmd, codec.CodeBadRequest, cmd.Op+" needs token")
		return
	}
	id, hasID := cmd.ID, cmd.HasID
	if !v.Slow() {
		claims, err := v.Verify(cmd.Token, time.Unix(0, c.l.srv.wheel.NowNano()))
		c.applyAuth(id, hasID, claims, err)
		return
	}
	c.authPending = true
	token, l := cmd.Token, c.l
	go func() {
		claims, err := v.Verify(token, time.Now())
		l.Post(func() {
			c.authPending = false
			if c.state != stOpen {
				return
			}
			c.applyAuth(id, hasID, claims, err)
			r := c.rareState()
			waiting := r.waiting
			r.waiting = nil
			for i, body := range waiting {
				if c.authPending || c.closing { // another slow auth: keep order
					r.waiting = append(waiting[i:len(waiting):len(waiting)], r.waiting...)
					break
				}
				c.exec(body)
			}
			c.l.flush()
		})
	}()
}

// applyAuth answers an auth or refresh with the token check's outcome. A
// refused token leaves the connection as it was. A token of another user
// than the connection's is refused (403): a new user needs a new connection.
func (c *conn) applyAuth(id uint64, hasID bool, claims auth.Claims, err error) {
	m := c.l.srv.metrics
	switch {
	case err != nil:
		m.errors(codec.CodeUnauthorized).Inc()
		c.push(codec.AppendError(nil, c.format, id, hasID, codec.CodeUnauthorized, err.Error()))
		return
	case c.claims != nil && claims.Sub != c.claims.Sub:
		m.errors(codec.CodeForbidden).Inc()
		c.push(codec.AppendError(nil, c.format, id, hasID, codec.CodeForbidden, "the token is for another user than this connection's"))
		return
	}
	c.claims = &claims
	c.tokenExp = claims.Exp.UnixNano()
	c.armTimer(c.l.srv.wheel.NowNano())
	c.push(codec.AppendAuthReply(nil, c.format, id, hasID, claims.Sub, claims.Exp.Unix()))
}

// checkTopic validates a topic name and the right to read it.
func (c *conn) checkTopic(cmd *codec.Command, name string) bool {
	if err := topic.ValidName(name); err != nil {
		c.replyErr(cmd, codec.CodeBadRequest, err.Error())
		return false
	}
	if code, msg := c.canRead(name); code != 0 {
		c.replyErr(cmd, code, msg)
		return false
	}
	return true
}

// smallList is the length up to which a list is searched pairwise; a
// longer one gets a map, so a command costs O(its size).
const smallList = 8

// heldSubs indexes a connection's subscriptions by topic for one command;
// nil stands for a search of c.subs (few subscriptions or few names).
type heldSubs map[string]*subscription

// heldIndex returns the index a command naming n topics should use.
func (c *conn) heldIndex(n int) heldSubs {
	if n <= smallList || len(c.subs) <= smallList {
		return nil
	}
	held := make(heldSubs, len(c.subs))
	for _, s := range c.subs {
		held[s.topic] = s
	}
	return held
}

func (h heldSubs) get(c *conn, name string) *subscription {
	if h == nil {
		return c.sub(name)
	}
	return h[name]
}

// twice reports whether name is among earlier (the names before it),
// with the map named when the list is long (it adds name to it).
func twice(named map[string]struct{}, earlier []string, name string) bool {
	if named == nil {
		return slices.Contains(earlier, name)
	}
	if _, dup := named[name]; dup {
		return true
	}
	named[name] = struct{}{}
	return false
}

func (c *conn) cmdSub(cmd *codec.Command) {
	if len(cmd.Topics) == 0 {
		c.replyErr(cmd, codec.CodeBadRequest, "sub needs topics")
		return
	}
	// Counts before per-topic work: every check below is O(topics named).
	limit := c.l.srv.cfg.MaxSubs
	if len(cmd.Topics) > limit {
		c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("at most %d topics per connection", limit))
		return
	}
	held := c.heldIndex(len(cmd.Topics))
	var named map[string]struct{}
	if len(cmd.Topics) > smallList {
		named = make(map[string]struct{}, len(cmd.Topics))
	}
	fresh := 0
	for i, name := range cmd.Topics {
		if !c.checkTopic(cmd, name) {
			return
		}
		if twice(named, cmd.Topics[:i], name) {
			c.replyErr(cmd, codec.CodeBadRequest, "topic "+name+" named twice")
			return
		}
		if held.get(c, name) == nil {
			fresh++
		} else if _, resync := cmd.Since[name]; !resync {
			c.replyErr(cmd, codec.CodeAlreadySubscribed, "already subscribed to "+name)
			return
		}
	}
	if len(c.subs)+fresh > limit {
		c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("at most %d topics per connection", limit))
		return
	}
	engine := c.l.srv.engine
	results := make([]codec.SubResult, len(cmd.Topics))
	catchups := make([]topic.Catchup, len(cmd.Topics))
	subs := make([]*subscription, len(cmd.Topics))
	for i, name := range cmd.Topics {
		var since *topic.Position
		if p, ok := cmd.Since[name]; ok {
			since = &p
		}
		if old := held.get(c, name); old != nil {
			c.dropSub(old) // a sub with since on a held topic starts it over
		}
		cu, err := engine.Subscribe(name, c.l.id, since)
		if err != nil {
			for _, done := range subs[:i] {
				c.dropSub(done)
			}
			// A bad name or loop, which the checks above rule out.
			c.replyErr(cmd, codec.CodeInternal, err.Error())
			return
		}
		subs[i] = c.newSub(name, cu)
		c.addSub(subs[i])
		results[i] = codec.SubResult{Topic: name, Epoch: cu.Pos.Epoch, Seq: cu.Pos.Seq, Rec: cu.Recovered}
		catchups[i] = cu
	}
	c.push(codec.AppendSubReply(nil, c.format, cmd.ID, cmd.HasID, results))
	for i, cu := range catchups {
		c.sendCatchup(subs[i], cu)
		if cu.Recovered {
			c.l.srv.metrics.recovered.Inc()
		}
	}
}

func (c *conn) cmdUnsub(cmd *codec.Command) {
	if len(cmd.Topics) == 0 {
		c.replyErr(cmd, codec.CodeBadRequest, "unsub needs topics")
		return
	}
	if limit := c.l.srv.cfg.MaxSubs; len(cmd.Topics) > limit {
		c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("at most %d topics per connection", limit))
		return
	}
	for _, name := range cmd.Topics {
		if err := topic.ValidName(name); err != nil {
			c.replyErr(cmd, codec.CodeBadRequest, err.Error())
			return
		}
	}
	held := c.heldIndex(len(cmd.Topics))
	for _, name := range cmd.Topics {
		if s := held.get(c, name); s != nil {
			c.dropSub(s)
			delete(held, name)
		}
	}
	c.push(codec.AppendEmptyReply(nil, c.format, cmd.ID, cmd.HasID))
}

func (c *conn) cmdPull(cmd *codec.Command) {
	if !c.checkTopic(cmd, cmd.Topic) {
		return
	}
	if cmd.From == nil {
		c.replyErr(cmd, codec.CodeBadRequest, `pull needs since {"e":..,"s":..}`)
		return
	}
	limit := cmd.Limit
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, c.l.srv.cfg.MaxPull)
	epoch, pubs, more, err := c.l.srv.engine.Pull(cmd.Topic, *cmd.From, limit)
	switch {
	case errors.Is(err, topic.ErrGone):
		c.replyErr(cmd, codec.CodeGone, err.Error())
	case err != nil:
		c.replyErr(cmd, codec.CodeBadRequest, err.Error())
	default:
		// A reply carries at most one outbox budget of payload (and at
		// least one publication); the client pulls the rest with "more".
		budget := c.l.srv.cfg.OutboxBytes
		for i, p := range pubs {
			if budget -= len(p.Data); budget < 0 && i > 0 {
				pubs, more = pubs[:i], true
				break
			}
		}
		c.push(codec.AppendPullReply(nil, c.format, cmd.ID, cmd.HasID, epoch, pubs, more))
	}
}

func (c *conn) cmdPub(cmd *codec.Command) {
	if err := topic.ValidName(cmd.Topic); err != nil {
		c.replyErr(cmd, codec.CodeBadRequest, err.Error())
		return
	}
	switch {
	case auth.CanPublish(c.claims, cmd.Topic), c.claims == nil && c.l.srv.anonPub.Match(cmd.Topic):
	case c.claims == nil:
		c.replyErr(cmd, codec.CodeUnauthorized, "pub needs a token whose pub claim matches "+cmd.Topic)
		return
	default:
		c.replyErr(cmd, codec.CodeForbidden, "the token's pub claim does not match "+cmd.Topic)
		return
	}
	req, code, msg := publishRequest(cmd.Topic, cmd.Data, cmd.DataMsgpack, cmd.Kind, c.l.srv.cfg.MaxFrame)
	if code != 0 {
		c.replyErr(cmd, code, msg)
		return
	}
	cmd.Data = nil // the publication owns it now
	pos, err := c.l.srv.Publish(context.Background(), []topic.PublishRequest{req})
	if err != nil {
		c.replyErr(cmd, publishErrCode(err), err.Error())
		return
	}
	c.push(codec.AppendPubReply(nil, c.format, cmd.ID, cmd.HasID, pos[0]))
}

// publishRequest checks one publication as a producer gave it and returns
// the request, or the error code and message that refuse it.
func publishRequest(name string, data []byte, dataMsgpack bool, kind string, maxData int) (topic.PublishRequest, int, string) {
	if err := topic.ValidName(name); err != nil {
		return topic.PublishRequest{}, codec.CodeBadRequest, err.Error()
	}
	if len(data) == 0 {
		return topic.PublishRequest{}, codec.CodeBadRequest, "d missing"
	}
	if len(data) > maxData {
		return topic.PublishRequest{}, codec.CodeTooLarge, fmt.Sprintf("d is %d bytes, at most %d", len(data), maxData)
	}
	if kind != "" && kind != "snap" {
		return topic.PublishRequest{}, codec.CodeBadRequest, fmt.Sprintf(`k must be absent or "snap", not %q`, kind)
	}
	return topic.PublishRequest{Topic: name, Data: data, DataMsgpack: dataMsgpack, Snap: kind == "snap"}, 0, ""
}

// publishErrCode maps a broker error to its PROTOCOL.md code.
func publishErrCode(err error) int {
	switch {
	case errors.Is(err, topic.ErrBadName):
		return codec.CodeBadRequest
	case errors.Is(err, topic.ErrTooManyTopics):
		return codec.CodeTooMany
	case errors.Is(err, topic.ErrUnavailable):
		return codec.CodeUnavailable
	}
	return codec.CodeInternal
}
