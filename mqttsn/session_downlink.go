package mqttsn

import (
	"fmt"
	"time"
)

func (s *session) enqueue(d *downlink) {
	s.outq = append(s.outq, d)
	s.pump()
}

// pump sends the next downlink when the client can take it and nothing is
// in flight. An awake client whose queue is empty gets its PINGRESP and
// goes back to sleep.
func (s *session) pump() {
	for s.inflight == nil {
		st := s.State()
		if st != StateActive && st != StateAwake {
			return
		}
		if len(s.outq) == 0 {
			if st == StateAwake {
				s.touch() // the sleep timer restarts
				s.setState(StateAsleep)
				s.send(&Pingresp{})
			}
			return
		}
		d := s.outq[0]
		tt, id, ok := s.outTopic(d)
		if !ok {
			s.finish(fmt.Errorf("topic %q: %d topics, the maximum: %w", d.topic, s.g.cfg.MaxTopics, ErrBufferFull))
			continue
		}
		if tt == TopicNormal && !s.knownOut[id] {
			s.msgID = nextID(s.msgID)
			s.startTxn(&Register{TopicID: id, MsgID: s.msgID, TopicName: d.topic})
			return
		}
		p := &Publish{QoS: d.qos, TopicIDType: tt, TopicID: id, Data: d.payload, DUP: d.dup}
		if d.qos == QoS0 {
			s.send(p)
			s.finish(nil)
			continue
		}
		if d.msgID == 0 {
			s.msgID = nextID(s.msgID)
			d.msgID = s.msgID
		}
		p.MsgID = d.msgID
		s.startTxn(p)
	}
}

func nextID(id uint16) uint16 {
	id++
	if id == 0 {
		id = 1
	}
	return id
}

// outTopic resolves a downlink topic: predefined, short, else normal.
func (s *session) outTopic(d *downlink) (TopicIDType, uint16, bool) {
	if id, ok := s.predefNames[d.topic]; ok {
		return TopicPredefined, id, true
	}
	if id, ok := ShortTopicID(d.topic); ok {
		return TopicShort, id, true
	}
	id, ok := s.allocate(d.topic)
	return TopicNormal, id, ok
}

func (s *session) startTxn(p Packet) {
	s.inflight = &outTxn{p: p}
	s.send(p)
	s.armTimer()
}

func (s *session) armTimer() {
	s.stopTimer()
	s.timerSeq++
	seq := s.timerSeq
	s.timer = time.AfterFunc(s.g.cfg.RetryInterval, func() {
		s.post(func() { s.onRetry(seq) })
	})
}

func (s *session) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

func (s *session) onRetry(seq uint64) {
	if seq != s.timerSeq || s.inflight == nil {
		return
	}
	t := s.inflight
	t.tries++
	if t.tries > s.g.cfg.MaxRetries {
		s.inflight = nil
		if len(s.outq) > 0 && s.outq[0].msgID != 0 {
			s.outq[0].dup = true
		}
		if s.State() == StateAwake {
			// The client went back to sleep early: keep the message for
			// its next wake-up.
			s.setState(StateAsleep)
			return
		}
		s.lose(fmt.Errorf("no answer to %v after %d retransmissions", t.p.Type(), s.g.cfg.MaxRetries))
		return
	}
	if p, ok := t.p.(*Publish); ok {
		p.DUP = true
		if len(s.outq) > 0 {
			s.outq[0].dup = true
		}
	}
	s.send(t.p)
	s.armTimer()
}

// finish removes the head downlink and reports its outcome.
func (s *session) finish(err error) {
	d := s.outq[0]
	s.outq[0] = nil
	s.outq = s.outq[1:]
	s.queued.Add(-1)
	if err != nil {
		s.g.log.Warn("downlink dropped", "client_id", s.id, "topic", d.topic, "err", err)
	}
	if f := s.g.cfg.OnDelivered; f != nil {
		f(Delivery{ClientID: s.id, Topic: d.topic, QoS: int(d.qos), Payload: d.payload, Err: err})
	}
}

func (s *session) onRegack(pr peer, p *Regack) {
	reg, ok := s.inflightPacket().(*Register)
	if !ok || reg.MsgID != p.MsgID {
		s.reject(pr, fmt.Errorf("regack for msgid %d not in flight", p.MsgID))
		return
	}
	s.stopTimer()
	s.inflight = nil
	if p.ReturnCode == Accepted {
		s.knownOut[reg.TopicID], s.validIn[reg.TopicID] = true, true
	} else {
		s.finish(&RejectedError{Op: "register", Code: p.ReturnCode})
	}
	s.pump()
}

func (s *session) onPuback(pr peer, p *Puback) {
	pub, ok := s.inflightPacket().(*Publish)
	if !ok || pub.MsgID != p.MsgID || p.MsgID == 0 {
		if p.ReturnCode == RejectedInvalidTopicID {
			// A rejected QoS 0 publication, matched on its topic id.
			delete(s.knownOut, p.TopicID)
		}
		if p.ReturnCode != Accepted {
			s.g.log.Warn("downlink rejected", "client_id", s.id, "topic_id", p.TopicID, "err", &RejectedError{Op: "publish", Code: p.ReturnCode})
		}
		return
	}
	s.stopTimer()
	s.inflight = nil
	switch {
	case p.ReturnCode == Accepted:
		s.finish(nil)
	case p.ReturnCode == RejectedInvalidTopicID && pub.TopicIDType == TopicNormal && s.outq[0].reregs == 0:
		// The client lost the mapping: register again, then republish.
		delete(s.knownOut, pub.TopicID)
		s.outq[0].reregs++
	default:
		s.finish(&RejectedError{Op: "publish", Code: p.ReturnCode})
	}
	s.pump()
}

func (s *session) inflightPacket() Packet {
	if s.inflight == nil {
		return nil
	}
	return s.inflight.p
}
