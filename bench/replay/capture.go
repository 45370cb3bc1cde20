package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/gopacket/gopacket/tcpassembly"
)

// maxStreamBytes bounds what one direction of one connection may hold in
// memory while a capture is read; past it the rest of that direction is
// counted, not kept.
const maxStreamBytes = 256 << 20

// stream is one direction of one TCP connection as reassembled.
type stream struct {
	id       int
	src, dst string // host:port
	client   bool   // known to be the client's side (its SYN was seen)
	server   bool   // known to be the server's side (its SYN-ACK was seen)
	data     []byte
	marks    []mark // where each chunk of data ends and when it was seen
	gap      int    // offset of the first hole in the data, -1 for none
	midway   bool   // the capture began after the connection did
	dropped  int    // bytes past maxStreamBytes, not kept
	complete bool
}

type mark struct {
	end int
	at  time.Time
}

// seenAt returns when the byte before offset end was captured: the time a
// message that ends there was complete.
func (s *stream) seenAt(end int) time.Time {
	i := sort.Search(len(s.marks), func(i int) bool { return s.marks[i].end >= end })
	if i == len(s.marks) {
		i = len(s.marks) - 1
	}
	if i < 0 {
		return time.Time{}
	}
	return s.marks[i].at
}

func (s *stream) Reassembled(rs []tcpassembly.Reassembly) {
	for _, r := range rs {
		if r.Skip != 0 && s.gap < 0 {
			if r.Skip < 0 && len(s.data) == 0 {
				s.midway = true
			} else {
				s.gap = len(s.data)
			}
		}
		if len(r.Bytes) == 0 {
			continue
		}
		if s.gap >= 0 || len(s.data)+len(r.Bytes) > maxStreamBytes {
			s.dropped += len(r.Bytes)
			continue
		}
		s.data = append(s.data, r.Bytes...)
		s.marks = append(s.marks, mark{len(s.data), r.Seen})
	}
}

func (s *stream) ReassemblyComplete() { s.complete = true }

type streamFactory struct {
	streams []*stream
	syn     map[[2]gopacket.Flow]bool // flows whose SYN without ACK was seen: client to server
	synAck  map[[2]gopacket.Flow]bool
}

func (f *streamFactory) New(netFlow, tcpFlow gopacket.Flow) tcpassembly.Stream {
	src, dst := netFlow.Endpoints()
	sp, dp := tcpFlow.Endpoints()
	k := [2]gopacket.Flow{netFlow, tcpFlow}
	s := &stream{
		id:     len(f.streams),
		src:    hostPort(src.String(), sp.String()),
		dst:    hostPort(dst.String(), dp.String()),
		client: f.syn[k],
		server: f.synAck[k],
		gap:    -1,
	}
	f.streams = append(f.streams, s)
	return s
}

func hostPort(h, p string) string {
	if bytes.IndexByte([]byte(h), ':') >= 0 {
		return "[" + h + "]:" + p
	}
	return h + ":" + p
}

// packetSource is what pcapgo's pcap and pcapng readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// Read reads a pcap or pcapng capture and extracts the tickfan traffic in
// it. An error means the file is no capture at all; what is wrong inside
// one is reported in Capture.Problems.
func Read(r io.Reader) (*Capture, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	var src packetSource
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		src, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}

	c := newCapture()
	f := &streamFactory{syn: map[[2]gopacket.Flow]bool{}, synAck: map[[2]gopacket.Flow]bool{}}
	asm := tcpassembly.NewAssembler(tcpassembly.NewStreamPool(f))
	var first time.Time
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A capture cut short (tcpdump killed) ends in a torn
			// record: keep what came before it.
			c.problem("capture file", fmt.Sprintf("packet %d: %v", c.Packets+1, err))
			break
		}
		c.Packets++
		if first.IsZero() {
			first = ci.Timestamp
		}
		pkt := gopacket.NewPacket(data, src.LinkType(), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		nl := pkt.NetworkLayer()
		tl, ok := pkt.TransportLayer().(*layers.TCP)
		if nl == nil || !ok {
			c.NonTCP++
			continue
		}
		c.TCPPackets++
		if ci.CaptureLength < ci.Length {
			c.problem("capture file", fmt.Sprintf("packet %d cut to %d of %d bytes (capture with -s 0)", c.Packets, ci.CaptureLength, ci.Length))
		}
		k := [2]gopacket.Flow{nl.NetworkFlow(), tl.TransportFlow()}
		if tl.SYN && !tl.ACK {
			f.syn[k] = true
		} else if tl.SYN {
			f.synAck[k] = true
		}
		asm.AssembleWithTimestamp(nl.NetworkFlow(), tl, ci.Timestamp)
	}
	asm.FlushAll()
	c.start = first
	for _, s := range f.streams {
		c.extract(s)
	}
	c.finish()
	return c, nil
}
