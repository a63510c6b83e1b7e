package noisehs

// ReplayWindow is the number of records below the highest accepted counter
// that can still be accepted once (§8 REPLAY_WINDOW).
const ReplayWindow = 1024

// windowBlocks has one block beyond the window so that advancing into a new
// block never clears bits that are still inside the window.
const windowBlocks = ReplayWindow/64 + 1

// replayWindow is a sliding bitmap of accepted counters, in the style of
// WireGuard's (RFC 6479). check is a pure pre-check; mark is called only after
// the record's tag verified, so a forged high counter cannot move the window.
type replayWindow struct {
	last uint64 // highest marked counter; meaningless until something is marked
	ring [windowBlocks]uint64
}

// check reports whether counter c may still be accepted.
func (w *replayWindow) check(c uint64) bool {
	if c > w.last {
		return true
	}
	if w.last-c >= ReplayWindow {
		return false
	}
	return w.ring[(c/64)%windowBlocks]&(1<<(c%64)) == 0
}

// mark records c as accepted. The caller has checked it.
func (w *replayWindow) mark(c uint64) {
	if c > w.last {
		cur, blk := w.last/64, c/64
		n := blk - cur
		if n > windowBlocks {
			n = windowBlocks
		}
		for i := uint64(1); i <= n; i++ {
			w.ring[(cur+i)%windowBlocks] = 0
		}
		w.last = c
	}
	w.ring[(c/64)%windowBlocks] |= 1 << (c % 64)
}
