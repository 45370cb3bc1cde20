package redisbroker

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
	"github.com/tickfan/tickfan/topic"
)

func metaKey(name string) string   { return "tf:{" + name + "}" }
func streamKey(name string) string { return "tf:{" + name + "}:h" }
func channelOf(name string) string { return "tf:{" + name + "}" }
func topicOf(channel string) string {
	return strings.TrimSuffix(strings.TrimPrefix(channel, "tf:{"), "}")
}

// publishLua places one publication. KEYS: hash, stream. ARGV: channel,
// data, flags, stream length, a fresh epoch (used when the topic is new),
// "s" to SPUBLISH, "1" to refuse a snapshot equal to the stored one.
// Returns {epoch, seq}, seq -1 when refused.
const publishLua = `
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 's', 0)
elseif ARGV[7] == '1' and redis.call('HGET', KEYS[1], 'sd') == ARGV[2] and redis.call('HGET', KEYS[1], 'sf') == ARGV[3] then
  return {e, -1}
end
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
redis.call('PERSIST', KEYS[1])
local n = tonumber(ARGV[4])
if n > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', n, s .. '-0', 'f', ARGV[3], 'd', ARGV[2])
end
if string.find(ARGV[3], 's', 1, true) then
  redis.call('HSET', KEYS[1], 'ss', s, 'sd', ARGV[2], 'sf', ARGV[3])
end
local msg = e .. '\n' .. s .. '\n' .. ARGV[3] .. '\n' .. ARGV[2]
if ARGV[6] == 's' then
  redis.call('SPUBLISH', ARGV[1], msg)
else
  redis.call('PUBLISH', ARGV[1], msg)
end
return {e, s}
`

// readLua reads a topic for a node that follows it. KEYS: hash, stream.
// ARGV: a fresh epoch and the expiry in ms for a topic never published
// (its placeholder), the epoch the node holds and the first seq it lacks
// (0: it holds nothing, read the whole stream). Returns {epoch, seq,
// snapseq, snapdata, snapflags, entries}.
const readLua = `
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'ss', 'sd', 'sf')
if not m[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {ARGV[1], 0, false, false, false, {}}
end
local from = '-'
if m[1] == ARGV[3] and tonumber(ARGV[4]) > 0 then
  from = ARGV[4] .. '-0'
end
return {m[1], tonumber(m[2]), m[3], m[4], m[5], redis.call('XRANGE', KEYS[2], from, '+')}
`

// touchLua keeps a placeholder alive while a node follows it. KEYS: hash.
// ARGV: the epoch the node holds, the expiry in ms.
const touchLua = `
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if m[1] == ARGV[1] and m[2] == '0' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`

// script is a Lua script run by its SHA1, loaded again on NOSCRIPT.
type script struct {
	src, sha string
}

func newScript(src string) script {
	h := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(h[:])}
}

func (s script) cmd(c rueidis.Client, keys []string, args ...string) rueidis.Completed {
	return c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// flags encodes a publication's kind and format.
func flags(snap, msgpack bool) string {
	switch {
	case snap && msgpack:
		return "sm"
	case snap:
		return "s"
	case msgpack:
		return "m"
	}
	return ""
}

func setFlags(p *topic.Publication, f string) {
	p.Snap = strings.IndexByte(f, 's') >= 0
	p.DataMsgpack = strings.IndexByte(f, 'm') >= 0
}

var errMessage = errors.New("malformed publication message")

// parseMessage decodes a publication as the channel carries it.
func parseMessage(name, msg string) (*topic.Publication, error) {
	var field [3]string
	rest := msg
	for i := range field {
		j := strings.IndexByte(rest, '\n')
		if j < 0 {
			return nil, errMessage
		}
		field[i], rest = rest[:j], rest[j+1:]
	}
	seq, err := strconv.ParseUint(field[1], 10, 64)
	if err != nil || seq == 0 || field[0] == "" {
		return nil, errMessage
	}
	p := &topic.Publication{Topic: name, Epoch: field[0], Seq: seq, Data: []byte(rest)}
	setFlags(p, field[2])
	return p, nil
}

// parseRead decodes readLua's reply into the topic's state.
func parseRead(name string, m rueidis.RedisMessage) (topic.State, error) {
	arr, err := m.ToArray()
	if err != nil {
		return topic.State{}, err
	}
	if len(arr) != 6 {
		return topic.State{}, fmt.Errorf("read %s: %d fields in the reply", name, len(arr))
	}
	var st topic.State
	if st.Epoch, err = arr[0].ToString(); err != nil {
		return st, err
	}
	seq, err := arr[1].AsInt64()
	if err != nil {
		return st, err
	}
	st.Seq = uint64(seq)
	if ss, err := arr[2].AsInt64(); err == nil && ss > 0 {
		sd, _ := arr[3].ToString()
		sf, _ := arr[4].ToString()
		st.Snap = &topic.Publication{Topic: name, Epoch: st.Epoch, Seq: uint64(ss), Data: []byte(sd)}
		setFlags(st.Snap, sf)
		st.Snap.Snap = true
	}
	entries, err := arr[5].ToArray()
	if err != nil {
		return st, err
	}
	st.History = make([]*topic.Publication, 0, len(entries))
	for _, en := range entries {
		xe, err := en.AsXRangeEntry()
		if err != nil {
			return st, err
		}
		id, _, _ := strings.Cut(xe.ID, "-")
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return st, fmt.Errorf("read %s: entry id %q", name, xe.ID)
		}
		p := &topic.Publication{Topic: name, Epoch: st.Epoch, Seq: seq, Data: []byte(xe.FieldValues["d"])}
		setFlags(p, xe.FieldValues["f"])
		if st.Snap != nil && p.Seq == st.Snap.Seq {
			p = st.Snap // one value for both, as a node that saw it live holds
		}
		st.History = append(st.History, p)
	}
	return st, nil
}
