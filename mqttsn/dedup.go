package mqttsn

import "hash/fnv"

// dedup remembers the last few accepted QoS 1 messages of one peer.
//
// A message is a duplicate when its MsgId, topic and payload all equal a
// remembered one. Matching on more than the MsgId keeps a peer that
// restarts its MsgId counter (a reboot, a gateway restart) from having
// fresh messages swallowed, while catching both retransmissions (DUP=1)
// and copies made by the link (DUP=0).
type dedup struct {
	ring [32]dedupEntry
	next int
}

type dedupEntry struct {
	msgID uint16
	sum   uint64
	used  bool
}

func dedupSum(topic string, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

// seen reports whether the message was accepted before.
func (d *dedup) seen(msgID uint16, topic string, payload []byte) bool {
	sum := dedupSum(topic, payload)
	for _, e := range d.ring {
		if e.used && e.msgID == msgID && e.sum == sum {
			return true
		}
	}
	return false
}

// add remembers an accepted message.
func (d *dedup) add(msgID uint16, topic string, payload []byte) {
	d.ring[d.next] = dedupEntry{msgID: msgID, sum: dedupSum(topic, payload), used: true}
	d.next = (d.next + 1) % len(d.ring)
}
