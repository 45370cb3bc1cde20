package server

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

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
	if r := c.l.srv.remote; r != nil {
		if names := c.notHeld(cmd.Topics); len(names) > 0 {
			c.park(c.l.msg)
			c.follow(r, names)
			return
		}
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
			if r := c.l.srv.remote; r != nil && errors.Is(err, topic.ErrNotHeld) {
				// Let go since the check above: follow it again.
				c.park(c.l.msg)
				c.follow(r, []string{name})
				return
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
	if r := c.l.srv.remote; r != nil {
		if names := c.notHeld([]string{cmd.Topic}); len(names) > 0 {
			c.park(c.l.msg)
			c.follow(r, names)
			return
		}
	}
	epoch, pubs, more, err := c.l.srv.engine.Pull(cmd.Topic, *cmd.From, limit)
	switch {
	case errors.Is(err, topic.ErrNotHeld) && c.l.srv.remote != nil:
		c.park(c.l.msg) // let go since the check above: follow it again
		c.follow(c.l.srv.remote, []string{cmd.Topic})
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
