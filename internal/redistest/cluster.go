package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// createTimeout bounds redis-cli --cluster create.
	createTimeout = 60 * time.Second
	// clusterOKTimeout bounds the wait for every node to report the
	// cluster ok after it was created.
	clusterOKTimeout = 30 * time.Second
)

// Cluster is a Redis Cluster of masters without replicas on 127.0.0.1.
type Cluster struct {
	Nodes []*Server
	Addrs []string // the nodes' addresses, in the order of Nodes
}

// StartCluster starts n (at least 3) cluster-enabled servers, with
//
//	--cluster-enabled yes --cluster-config-file <dir>/nodes.conf --cluster-node-timeout 2000
//
// besides what Start passes (and --cluster-port, a free bus port), joins
// them with redis-cli --cluster create (slots split evenly, no replicas),
// and waits until every node reports cluster_state:ok, knows all n nodes and
// sees all 16384 slots assigned (WaitOK). The nodes are killed in t's
// Cleanup. A node's Restart keeps its nodes.conf: it comes back as the
// master of the same slots, without their keys.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	Require(t)
	_, cli, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Nodes: make([]*Server, n), Addrs: make([]string, n)}
	for i := range c.Nodes {
		c.Nodes[i] = start(t, true, nil)
		c.Addrs[i] = c.Nodes[i].Addr
	}

	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create %s: %v\n%s",
			strings.Join(c.Addrs, " "), err, tail(out, 30))
	}

	c.WaitOK(t)
	return c
}

// WaitOK waits until every node reports cluster_state:ok, knows all the
// nodes and sees all 16384 slots assigned, as after a node's Restart (at
// most 30 s).
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(clusterOKTimeout)
	for {
		bad := c.notOK(len(c.Nodes))
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster %s not ok within %v: %s",
				strings.Join(c.Addrs, " "), clusterOKTimeout, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notOK returns why some node does not yet see the cluster ok, "" if all do.
func (c *Cluster) notOK(n int) string {
	for _, s := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		msg, err := s.Result(ctx, "CLUSTER", "INFO")
		cancel()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", s.Addr, err)
		}
		str, err := msg.ToString()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", s.Addr, err)
		}
		info := parseInfo(str)
		if info["cluster_state"] != "ok" ||
			info["cluster_slots_assigned"] != "16384" ||
			info["cluster_known_nodes"] != strconv.Itoa(n) {
			return fmt.Sprintf("%s: cluster_state:%s cluster_slots_assigned:%s cluster_known_nodes:%s",
				s.Addr, info["cluster_state"], info["cluster_slots_assigned"], info["cluster_known_nodes"])
		}
	}
	return ""
}

// FlushAll runs FLUSHALL on every master.
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		s.must(t, "FLUSHALL")
	}
}

// ResetStats runs CONFIG RESETSTAT on every node.
func (c *Cluster) ResetStats(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		s.ResetStats(t)
	}
}

// CommandStats returns the calls of each command summed over all nodes (see
// Server.CommandStats).
func (c *Cluster) CommandStats(t testing.TB) map[string]int64 {
	t.Helper()
	sum := make(map[string]int64)
	for _, s := range c.Nodes {
		for name, n := range s.CommandStats(t) {
			sum[name] += n
		}
	}
	return sum
}

// Slot returns the hash slot of key (CLUSTER KEYSLOT).
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	return int(c.Nodes[0].Int(t, "CLUSTER", "KEYSLOT", key))
}

// Owner returns the node that serves key's hash slot, as the first node's
// CLUSTER SLOTS tells.
func (c *Cluster) Owner(t testing.TB, key string) *Server {
	t.Helper()
	slot := c.Slot(t, key)
	slots := c.Nodes[0].must(t, "CLUSTER", "SLOTS")
	ranges, err := slots.ToArray()
	if err != nil {
		t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	for _, r := range ranges {
		fields, err := r.ToArray()
		if err != nil || len(fields) < 3 {
			t.Fatalf("redistest: CLUSTER SLOTS: unexpected entry %v (%v)", fields, err)
		}
		first, _ := fields[0].AsInt64()
		last, _ := fields[1].AsInt64()
		if int64(slot) < first || int64(slot) > last {
			continue
		}
		master, _ := fields[2].ToArray()
		if len(master) < 2 {
			t.Fatalf("redistest: CLUSTER SLOTS: no master for slots %d-%d", first, last)
		}
		ip, _ := master[0].ToString()
		port, _ := master[1].AsInt64()
		addr := net.JoinHostPort(ip, strconv.FormatInt(port, 10))
		for _, s := range c.Nodes {
			if s.Addr == addr {
				return s
			}
		}
		t.Fatalf("redistest: slot %d is served by %s, no node of this cluster", slot, addr)
	}
	t.Fatalf("redistest: slot %d of %q is not assigned", slot, key)
	return nil
}
