package replay

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// pcapBuilder writes TCP packets of made-up connections into a pcap.
type pcapBuilder struct {
	t   *testing.T
	buf bytes.Buffer
	w   *pcapgo.Writer
	at  time.Time
}

func newPcap(t *testing.T) *pcapBuilder {
	b := &pcapBuilder{t: t, at: time.Unix(1700000000, 0)}
	b.w = pcapgo.NewWriter(&b.buf)
	if err := b.w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	return b
}

type tcpConn struct {
	b          *pcapBuilder
	src, dst   net.IP
	sport      uint16
	dport      uint16
	seq        uint32
	serverSide uint32
}

func (b *pcapBuilder) conn(src string, sport uint16, dport uint16, handshake bool) *tcpConn {
	c := &tcpConn{b: b, src: net.ParseIP(src).To4(), dst: net.IPv4(10, 0, 0, 2).To4(), sport: sport, dport: dport, seq: 1000, serverSide: 5000}
	if handshake {
		c.packet(false, &layers.TCP{SYN: true}, nil)
		c.seq++
		c.packet(true, &layers.TCP{SYN: true, ACK: true}, nil)
		c.serverSide++
	}
	return c
}

// packet writes one segment, from the client unless fromServer.
func (c *tcpConn) packet(fromServer bool, tcp *layers.TCP, payload []byte) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: c.src, DstIP: c.dst}
	tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Window = layers.TCPPort(c.sport), layers.TCPPort(c.dport), c.seq, 65535
	if fromServer {
		ip.SrcIP, ip.DstIP = c.dst, c.src
		tcp.SrcPort, tcp.DstPort, tcp.Seq = tcp.DstPort, tcp.SrcPort, c.serverSide
	}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		c.b.t.Fatal(err)
	}
	c.b.at = c.b.at.Add(time.Millisecond)
	ci := gopacket.CaptureInfo{Timestamp: c.b.at, CaptureLength: len(sb.Bytes()), Length: len(sb.Bytes())}
	if err := c.b.w.WritePacket(ci, sb.Bytes()); err != nil {
		c.b.t.Fatal(err)
	}
}

func (c *tcpConn) send(payload []byte) {
	c.packet(false, &layers.TCP{ACK: true, PSH: true}, payload)
	c.seq += uint32(len(payload))
}

func (c *tcpConn) lose(n int) { c.seq += uint32(n) }

func (c *tcpConn) close() { c.packet(false, &layers.TCP{FIN: true, ACK: true}, nil) }

// Read reports what it could not parse, by reason, and replays the rest.
func TestReadProblems(t *testing.T) {
	b := newPcap(t)
	pub := tcpFrames(t, map[string]any{"op": "pub", "id": 1, "t": "a.b", "d": 1})

	ok := b.conn("10.0.0.1", 5000, 8081, true)
	ok.send(pub)
	ok.send(pub[:7]) // the capture ends inside the next frame
	ok.close()

	midway := b.conn("10.0.0.3", 5001, 8081, false)
	midway.send(pub)

	other := b.conn("10.0.0.4", 5002, 22, true)
	other.send([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	other.close()

	holed := b.conn("10.0.0.5", 5003, 8081, true)
	holed.send(pub)
	holed.lose(len(pub))
	holed.send(pub)
	holed.close()

	reply := b.conn("10.0.0.6", 5004, 8082, true)
	reply.packet(true, &layers.TCP{ACK: true, PSH: true}, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))

	c, err := Read(&b.buf)
	if err != nil {
		t.Fatal(err)
	}
	if c.Found[FoundTCPPub] != 2 || len(c.Events) != 2 {
		t.Errorf("found %v, %d events", c.Found, len(c.Events))
	}
	var kinds []string
	for _, p := range c.Problems {
		kinds = append(kinds, p.Kind)
		if p.Count != 1 || len(p.Firsts) != 1 {
			t.Errorf("%+v", p)
		}
	}
	if got, want := strings.Join(kinds, ","), "truncated,capture began mid-connection,not tickfan,packets missing"; got != want {
		t.Errorf("problems %q, want %q: %+v", got, want, c.Problems)
	}
	if c.ServerBytes != 38 {
		t.Errorf("server bytes %d", c.ServerBytes)
	}
	if c.Packets == 0 || c.TCPPackets != c.Packets {
		t.Errorf("packets %d, tcp %d", c.Packets, c.TCPPackets)
	}
}

func TestReadNotACapture(t *testing.T) {
	if _, err := Read(strings.NewReader("not a pcap at all")); err == nil {
		t.Fatal("no error")
	}
}
