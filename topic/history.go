package topic

// history is a bounded ring of a topic's latest publications, in seq order
// with no gaps. It grows on demand up to its limit, so a quiet topic costs
// little. It is guarded by its topic's mutex.
type history struct {
	buf   []*Publication
	start int // index in buf of the oldest entry
	n     int // entries held
	limit int
}

func (h *history) push(p *Publication) {
	if h.limit <= 0 {
		return
	}
	if h.n == len(h.buf) && len(h.buf) < h.limit {
		h.grow()
	}
	if h.n < len(h.buf) {
		h.buf[(h.start+h.n)%len(h.buf)] = p
		h.n++
		return
	}
	h.buf[h.start] = p // full: the oldest goes
	h.start = (h.start + 1) % len(h.buf)
}

func (h *history) grow() {
	size := max(8, 2*len(h.buf))
	size = min(size, h.limit)
	nb := make([]*Publication, size)
	for i := 0; i < h.n; i++ {
		nb[i] = h.buf[(h.start+i)%len(h.buf)]
	}
	h.buf, h.start = nb, 0
}

// first is the seq of the oldest held publication, or 0 when empty.
func (h *history) first() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.buf[h.start].Seq
}

// holds reports whether every seq of from..to is held (from > to is an empty
// range, always held).
func (h *history) holds(from, to uint64) bool {
	if from > to {
		return true
	}
	return h.n > 0 && from >= h.first() && to <= h.buf[(h.start+h.n-1)%len(h.buf)].Seq
}

// appendRange appends the publications from..to to dst; the caller has
// checked holds(from, to).
func (h *history) appendRange(dst []*Publication, from, to uint64) []*Publication {
	if from > to {
		return dst
	}
	off := int(from - h.first())
	for i := off; i <= off+int(to-from); i++ {
		dst = append(dst, h.buf[(h.start+i)%len(h.buf)])
	}
	return dst
}
