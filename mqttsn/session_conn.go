package mqttsn

import (
	"errors"
	"time"
)

// onConnect handles CONNECT in any state. From asleep or awake it too
// starts a new connection, honouring the flags (MeterLink's choice): the
// Will is prompted for again if Will=1, and CleanSession clears the topic
// table, subscriptions and Will. Queued downlinks survive either way.
func (s *session) onConnect(p *Connect) {
	s.loadPredefined()
	if p.CleanSession {
		clear(s.validIn)
		clear(s.subs)
		s.will = nil
	}
	// Without CleanSession the client keeps its ids, but the gateway must
	// REGISTER again before publishing on normal ids (spec §6.5).
	clear(s.knownOut)
	clear(s.qos2)
	s.stopTimer()
	if s.inflight != nil {
		s.inflight = nil
		if len(s.outq) > 0 && s.outq[0].msgID != 0 {
			s.outq[0].dup = true
		}
	}
	s.keepAlive.Store(int64(time.Duration(p.Duration) * time.Second))
	s.lostCheck.Store(false)
	s.touch()
	if p.Will {
		s.pendingWill = &Will{}
		s.setState(StateConnecting)
		s.send(&WillTopicReq{})
		return
	}
	s.accept()
}

func (s *session) accept() {
	s.setState(StateActive)
	s.touch()
	s.send(&Connack{ReturnCode: Accepted})
	s.g.log.Info("mqtt-sn client connected", "client_id", s.id, "addr", s.peerAddr())
	if f := s.g.cfg.OnConnect; f != nil {
		f(s.id)
	}
	s.pump()
}

func (s *session) peerAddr() string {
	if pr := s.peer.Load(); pr != nil {
		return pr.key()
	}
	return ""
}

func (s *session) onWillTopic(p *WillTopic) {
	if p.Topic == "" {
		s.will, s.pendingWill = nil, nil
		s.accept()
		return
	}
	s.pendingWill = &Will{Topic: p.Topic, QoS: int(max(p.QoS, 0)), Retain: p.Retain}
	s.send(&WillMsgReq{})
}

func (s *session) onWillMsg(p *WillMsg) {
	if s.pendingWill == nil || s.pendingWill.Topic == "" {
		s.send(&WillTopicReq{})
		return
	}
	s.pendingWill.Message = p.Msg
	s.will, s.pendingWill = s.pendingWill, nil
	s.accept()
}

func (s *session) onWillTopicUpd(pr peer, p *WillTopicUpd) {
	if p.Topic == "" {
		s.will = nil
	} else {
		w := &Will{Topic: p.Topic, QoS: int(max(p.QoS, 0)), Retain: p.Retain}
		if s.will != nil {
			w.Message = s.will.Message
		}
		s.will = w
	}
	s.send(&WillTopicResp{ReturnCode: Accepted})
}

func (s *session) onWillMsgUpd(pr peer, p *WillMsgUpd) {
	if s.will == nil {
		s.reject(pr, errors.New("will message update without will topic"))
		s.send(&WillMsgResp{ReturnCode: RejectedNotSupported})
		return
	}
	s.will.Message = p.Msg
	s.send(&WillMsgResp{ReturnCode: Accepted})
}

func (s *session) onPingreq(p *Pingreq) {
	switch s.State() {
	case StateAsleep:
		if p.ClientID == "" {
			s.send(&Pingresp{})
			return
		}
		s.setState(StateAwake)
		s.pump()
	case StateAwake:
		// A retransmitted wake-up: answered when the buffer is flushed.
		if s.inflight == nil {
			s.pump()
		}
	default:
		s.send(&Pingresp{})
	}
}

func (s *session) onDisconnect(p *Disconnect) {
	s.stopTimer()
	s.inflight = nil
	if len(s.outq) > 0 && s.outq[0].msgID != 0 {
		s.outq[0].dup = true
	}
	if p.HasDuration && p.Duration > 0 {
		// Sleep: buffer downlinks, supervise the sleep time.
		s.sleepFor.Store(int64(time.Duration(p.Duration) * time.Second))
		s.touch()
		s.lostCheck.Store(false)
		s.setState(StateAsleep)
		s.send(&Disconnect{})
		return
	}
	s.setState(StateDisconnected)
	s.pendingWill = nil
	s.send(&Disconnect{})
	s.g.log.Info("mqtt-sn client disconnected", "client_id", s.id)
}

// kick ends the connection from the gateway's side.
func (s *session) kick() {
	switch s.State() {
	case StateActive, StateAsleep, StateAwake, StateConnecting:
		s.stopTimer()
		s.inflight = nil
		if len(s.outq) > 0 && s.outq[0].msgID != 0 {
			s.outq[0].dup = true
		}
		s.setState(StateDisconnected)
		s.send(&Disconnect{})
		s.g.log.Info("mqtt-sn client disconnected by gateway", "client_id", s.id)
	}
}

// displaced runs when another client took this session's address.
func (s *session) displaced() {
	switch s.State() {
	case StateActive, StateAsleep, StateAwake, StateConnecting:
		s.lose(errors.New("address taken by another client"))
	}
}

// expired reports whether the keep-alive or sleep time plus tolerance ran
// out; it runs on the supervisor goroutine.
func (s *session) expired(now time.Time) bool {
	var d time.Duration
	switch s.State() {
	case StateActive, StateConnecting:
		d = time.Duration(s.keepAlive.Load())
	case StateAsleep:
		d = time.Duration(s.sleepFor.Load())
	default:
		return false
	}
	return d > 0 && now.Sub(time.Unix(0, s.lastSeen.Load())) > tolerance(d)
}

func (s *session) checkLost() {
	s.lostCheck.Store(false)
	if s.expired(time.Now()) {
		s.lose(errors.New("keep-alive timeout"))
	}
}

// lose declares the client lost and publishes its Will.
func (s *session) lose(cause error) {
	s.stopTimer()
	s.inflight = nil
	if len(s.outq) > 0 && s.outq[0].msgID != 0 {
		s.outq[0].dup = true
	}
	s.setState(StateLost)
	s.g.log.Warn("mqtt-sn client lost", "client_id", s.id, "addr", s.peerAddr(), "err", cause)
	if w := s.will; w != nil && s.g.cfg.WillPublish != nil {
		s.g.cfg.WillPublish(s.id, w.Topic, w.Message)
	}
	s.will = nil
	if f := s.g.cfg.OnLost; f != nil {
		f(s.id)
	}
}
