package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// Publish hands publications to the broker. Any goroutine may call it. The
// requests must have been checked (publishRequest); the broker keeps their data.
func (s *Server) Publish(ctx context.Context, reqs []topic.PublishRequest) ([]topic.Position, error) {
	pos, err := s.broker.Publish(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	s.metrics.publications.Add(float64(len(reqs)))
	return pos, nil
}

func (c *conn) cmdPub(cmd *codec.Command) {
	c.l.stageAt(stDecoded)
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
	if r := c.l.srv.remote; r != nil {
		c.pubRemote(r, cmd, req)
		return
	}
	pos, err := c.l.srv.Publish(context.Background(), []topic.PublishRequest{req})
	if err != nil {
		c.replyErr(cmd, publishErrCode(err), err.Error())
		return
	}
	c.l.stageAt(stPublished)
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
