package mqttsn

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxInbox bounds the packets waiting for one client's session goroutine.
const maxInbox = 256

// session is one client as the gateway sees it. The fields after the inbox
// are owned by the session goroutine: only closures run through post touch
// them.
type session struct {
	g  *Gateway
	id string

	peer      atomic.Pointer[peer]
	state     atomic.Int32 // ClientState
	lastSeen  atomic.Int64 // unix nanoseconds of the last packet
	keepAlive atomic.Int64 // supervised duration while active, ns; 0 = none
	sleepFor  atomic.Int64 // supervised duration while asleep, ns
	queued    atomic.Int32 // downlinks queued or in flight
	lostCheck atomic.Bool  // a checkLost is posted

	mu      sync.Mutex
	inbox   []func()
	packets int // packets in inbox
	running bool

	predef      map[uint16]string
	predefNames map[string]uint16
	alloc       map[string]uint16 // normal ids: stable per client, never reused for another name
	allocName   map[uint16]string
	nextID      uint16
	validIn     map[uint16]bool // ids the client may publish on in this connection
	knownOut    map[uint16]bool // ids the client knows, so the gateway may publish on them
	subs        map[string]QoS
	will        *Will
	pendingWill *Will
	dedup       dedup
	qos2        map[uint16]bool // QoS 2 publications awaiting PUBREL
	outq        []*downlink
	inflight    *outTxn
	msgID       uint16
	timer       *time.Timer
	timerSeq    uint64
}

type downlink struct {
	topic   string
	qos     QoS
	payload []byte
	msgID   uint16
	dup     bool
	reregs  int
}

// outTxn is the one REGISTER or PUBLISH in flight towards the client.
type outTxn struct {
	p     Packet // *Register or *Publish
	tries int
}

func newSession(g *Gateway, id string) *session {
	s := &session{
		g:         g,
		id:        id,
		alloc:     make(map[string]uint16),
		allocName: make(map[uint16]string),
		validIn:   make(map[uint16]bool),
		knownOut:  make(map[uint16]bool),
		subs:      make(map[string]QoS),
		qos2:      make(map[uint16]bool),
	}
	s.loadPredefined()
	s.touch()
	return s
}

// State returns the client's state.
func (s *session) State() ClientState { return ClientState(s.state.Load()) }

func (s *session) setState(st ClientState) { s.state.Store(int32(st)) }

func (s *session) touch() { s.lastSeen.Store(time.Now().UnixNano()) }

// post queues f for the session goroutine, starting it if needed. It
// reports false once the gateway has stopped.
func (s *session) post(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inbox = append(s.inbox, f)
	if s.running {
		return true
	}
	if !s.g.spawn(s.drain) {
		s.inbox = s.inbox[:len(s.inbox)-1]
		return false
	}
	s.running = true
	return true
}

// postPacket queues a received packet, dropping it when the client's
// inbox is full (a slow OnPublish and a client retransmitting fast).
func (s *session) postPacket(pr peer, p Packet) {
	s.mu.Lock()
	full := s.packets >= maxInbox
	if !full {
		s.packets++
	}
	s.mu.Unlock()
	if full {
		s.g.reject(s.id, pr.addr, fmt.Errorf("%v dropped: session inbox full", p.Type()))
		return
	}
	s.post(func() {
		s.mu.Lock()
		s.packets--
		s.mu.Unlock()
		s.handle(pr, p)
	})
}

func (s *session) drain() {
	for {
		s.mu.Lock()
		if len(s.inbox) == 0 {
			s.running = false
			s.inbox = nil
			s.mu.Unlock()
			return
		}
		f := s.inbox[0]
		s.inbox[0] = nil
		s.inbox = s.inbox[1:]
		s.mu.Unlock()
		f()
	}
}

func (s *session) send(p Packet) {
	if pr := s.peer.Load(); pr != nil {
		s.g.send(*pr, p)
	}
}

func (s *session) reject(pr peer, err error) { s.g.reject(s.id, pr.addr, err) }

func (s *session) loadPredefined() {
	s.predef, s.predefNames = nil, nil
	if s.g.cfg.Predefined == nil {
		return
	}
	m := s.g.cfg.Predefined(s.id)
	s.predef = make(map[uint16]string, len(m))
	s.predefNames = make(map[string]uint16, len(m))
	for id, name := range m {
		s.predef[id] = name
		s.predefNames[name] = id
	}
}

// handle processes one packet from the client, in arrival order.
func (s *session) handle(pr peer, p Packet) {
	st := s.State()
	if c, ok := p.(*Connect); ok {
		s.onConnect(c)
		return
	}
	if pub, ok := p.(*Publish); ok && pub.QoS == QoSMinus1 {
		s.onPublishMinus1(pr, pub)
		return
	}
	switch st {
	case StateDisconnected, StateLost:
		s.reject(pr, fmt.Errorf("%v from %v client", p.Type(), st))
		s.send(&Disconnect{})
		return
	case StateConnecting:
		switch p := p.(type) {
		case *WillTopic:
			s.onWillTopic(p)
		case *WillMsg:
			s.onWillMsg(p)
		case *Disconnect:
			s.onDisconnect(p)
		default:
			s.reject(pr, fmt.Errorf("%v during connect", p.Type()))
		}
		return
	}
	switch p := p.(type) {
	case *Publish:
		s.onPublish(pr, p)
	case *Pubrel:
		delete(s.qos2, p.MsgID)
		s.send(&Pubcomp{MsgID: p.MsgID})
	case *Puback:
		s.onPuback(pr, p)
	case *Regack:
		s.onRegack(pr, p)
	case *Register:
		s.onRegister(pr, p)
	case *Subscribe:
		s.onSubscribe(pr, p)
	case *Unsubscribe:
		s.onUnsubscribe(pr, p)
	case *Pingreq:
		s.onPingreq(p)
	case *Pingresp:
	case *Disconnect:
		s.onDisconnect(p)
	case *WillTopicUpd:
		s.onWillTopicUpd(pr, p)
	case *WillMsgUpd:
		s.onWillMsgUpd(pr, p)
	default:
		s.reject(pr, fmt.Errorf("unexpected %v", p.Type()))
	}
}

// topicFor resolves an incoming (type, id) in this client's table.
func (s *session) topicFor(tt TopicIDType, id uint16) (string, bool) {
	switch tt {
	case TopicPredefined:
		name, ok := s.predef[id]
		return name, ok
	case TopicShort:
		return ShortTopicName(id), true
	}
	if !s.validIn[id] {
		return "", false
	}
	name, ok := s.allocName[id]
	return name, ok
}

func (s *session) onPublish(pr peer, p *Publish) {
	if st := s.State(); st != StateActive {
		s.reject(pr, fmt.Errorf("publish from %v client", st))
		if p.QoS > QoS0 {
			s.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: RejectedNotSupported})
		}
		return
	}
	topic, ok := s.topicFor(p.TopicIDType, p.TopicID)
	if !ok {
		// Pitfall 4: answer even at QoS 0, keep the session, never forward.
		s.reject(pr, fmt.Errorf("publish on unknown %v topic id %d", p.TopicIDType, p.TopicID))
		s.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: RejectedInvalidTopicID})
		return
	}
	switch p.QoS {
	case QoS0:
		if err := s.deliverUp(topic, p.Data); err != nil {
			s.g.log.Warn("publication dropped", "client_id", s.id, "topic", topic, "qos", 0, "err", err)
		}
	case QoS1:
		if !s.dedup.seen(p.MsgID, topic, p.Data) {
			if err := s.deliverUp(topic, p.Data); err != nil {
				s.g.log.Warn("publication not acknowledged", "client_id", s.id, "topic", topic, "qos", 1, "err", err)
				return
			}
			s.dedup.add(p.MsgID, topic, p.Data)
		}
		s.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: Accepted})
	case QoS2:
		if !s.qos2[p.MsgID] && !s.dedup.seen(p.MsgID, topic, p.Data) {
			if err := s.deliverUp(topic, p.Data); err != nil {
				s.g.log.Warn("publication not acknowledged", "client_id", s.id, "topic", topic, "qos", 2, "err", err)
				return
			}
			s.dedup.add(p.MsgID, topic, p.Data)
		}
		s.qos2[p.MsgID] = true
		s.send(&Pubrec{MsgID: p.MsgID})
	}
}

// onPublishMinus1 handles QoS −1, which needs no connection and gets no
// answer, not even a rejection.
func (s *session) onPublishMinus1(pr peer, p *Publish) {
	topic, ok := s.topicFor(p.TopicIDType, p.TopicID)
	if !ok {
		s.reject(pr, fmt.Errorf("qos -1 publish on unknown %v topic id %d", p.TopicIDType, p.TopicID))
		return
	}
	if err := s.deliverUp(topic, p.Data); err != nil {
		s.g.log.Warn("publication dropped", "client_id", s.id, "topic", topic, "qos", -1, "err", err)
	}
}

func (s *session) deliverUp(topic string, payload []byte) error {
	if f := s.g.cfg.OnPublish; f != nil {
		return f(s.g.context(), s.id, topic, payload)
	}
	return nil
}

// allocate returns the client's normal id for name, assigning a new one if
// needed. Ids are never reused for another name, across clean sessions
// too. ok is false when MaxTopics ids are in use.
func (s *session) allocate(name string) (uint16, bool) {
	if id, ok := s.alloc[name]; ok {
		return id, true
	}
	if len(s.alloc) >= s.g.cfg.MaxTopics {
		return 0, false
	}
	for {
		s.nextID++
		if s.nextID == 0 || s.nextID == 0xFFFF {
			s.nextID = 1
		}
		if _, used := s.allocName[s.nextID]; !used {
			break
		}
	}
	s.alloc[name] = s.nextID
	s.allocName[s.nextID] = name
	return s.nextID, true
}

func (s *session) onRegister(pr peer, p *Register) {
	if p.TopicName == "" || hasWildcard(p.TopicName) {
		s.reject(pr, fmt.Errorf("register of topic name %q", p.TopicName))
		s.send(&Regack{MsgID: p.MsgID, ReturnCode: RejectedNotSupported})
		return
	}
	id, ok := s.allocate(p.TopicName)
	if !ok {
		s.reject(pr, fmt.Errorf("register %q: %d topics, the maximum", p.TopicName, s.g.cfg.MaxTopics))
		s.send(&Regack{MsgID: p.MsgID, ReturnCode: RejectedCongestion})
		return
	}
	s.validIn[id], s.knownOut[id] = true, true
	s.send(&Regack{TopicID: id, MsgID: p.MsgID, ReturnCode: Accepted})
}

func (s *session) onSubscribe(pr peer, p *Subscribe) {
	granted := min(max(p.QoS, QoS0), QoS1)
	ack := &Suback{QoS: granted, MsgID: p.MsgID}
	var name string
	switch p.TopicIDType {
	case TopicNormal:
		name = p.TopicName
		if name == "" {
			ack.ReturnCode = RejectedNotSupported
		} else if !hasWildcard(name) {
			id, ok := s.allocate(name)
			if !ok {
				ack.ReturnCode = RejectedCongestion
			}
			ack.TopicID = id
		}
	case TopicPredefined:
		ack.TopicID = p.TopicID
		n, ok := s.predef[p.TopicID]
		if !ok {
			ack.ReturnCode = RejectedInvalidTopicID
		}
		name = n
	case TopicShort:
		name = ShortTopicName(p.TopicID)
	}
	if _, ok := s.subs[name]; !ok && len(s.subs) >= s.g.cfg.MaxTopics && ack.ReturnCode == Accepted {
		ack.ReturnCode = RejectedCongestion
	}
	if ack.ReturnCode != Accepted {
		s.reject(pr, fmt.Errorf("subscribe %v %q id %d: %v", p.TopicIDType, p.TopicName, p.TopicID, ack.ReturnCode))
		s.send(ack)
		return
	}
	if p.TopicIDType == TopicNormal && ack.TopicID != 0 {
		s.validIn[ack.TopicID], s.knownOut[ack.TopicID] = true, true
	}
	s.subs[name] = granted
	s.send(ack)
}

func (s *session) onUnsubscribe(pr peer, p *Unsubscribe) {
	switch p.TopicIDType {
	case TopicNormal:
		delete(s.subs, p.TopicName)
	case TopicPredefined:
		delete(s.subs, s.predef[p.TopicID])
	case TopicShort:
		delete(s.subs, ShortTopicName(p.TopicID))
	}
	s.send(&Unsuback{MsgID: p.MsgID})
}
