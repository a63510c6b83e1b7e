package mqttsn

import "fmt"

// Advertise (0x00) is broadcast by a gateway every Duration seconds.
type Advertise struct {
	GwID     byte
	Duration uint16 // seconds until the next ADVERTISE
}

// SearchGW (0x01) is broadcast by a client looking for a gateway.
type SearchGW struct {
	Radius byte // hops; 0 means the whole network
}

// GWInfo (0x02) answers a SEARCHGW. GwAdd is present only when a client
// answers on a gateway's behalf.
type GWInfo struct {
	GwID  byte
	GwAdd []byte
}

// Connect (0x04) opens a connection. Duration is the keep-alive in seconds.
type Connect struct {
	Will         bool
	CleanSession bool
	Duration     uint16
	ClientID     string // 1–23 characters; the gateway enforces it
}

// Connack (0x05) answers a CONNECT.
type Connack struct {
	ReturnCode ReturnCode
}

// WillTopicReq (0x06) asks the client for its Will topic.
type WillTopicReq struct{}

// WillTopic (0x07) carries the Will topic and its QoS and Retain flags. An
// empty Topic (a 2-byte message without Flags) deletes the Will.
type WillTopic struct {
	QoS    QoS
	Retain bool
	Topic  string
}

// WillMsgReq (0x08) asks the client for its Will message.
type WillMsgReq struct{}

// WillMsg (0x09) carries the Will message.
type WillMsg struct {
	Msg []byte
}

// Pingreq (0x16) is a keep-alive probe. A sleeping client that wakes up
// includes its ClientID; otherwise it is empty.
type Pingreq struct {
	ClientID string
}

// Pingresp (0x17) answers a PINGREQ; to a waking client it also means that
// no more buffered messages follow.
type Pingresp struct{}

// Disconnect (0x18) ends a connection. A client going to sleep sets
// HasDuration and the sleep Duration in seconds; the gateway's reply never
// carries a Duration.
type Disconnect struct {
	HasDuration bool
	Duration    uint16
}

// WillTopicUpd (0x1A) updates the Will topic. An empty Topic deletes both
// the Will topic and the Will message.
type WillTopicUpd struct {
	QoS    QoS
	Retain bool
	Topic  string
}

// WillTopicResp (0x1B) answers a WILLTOPICUPD.
type WillTopicResp struct {
	ReturnCode ReturnCode
}

// WillMsgUpd (0x1C) updates the Will message.
type WillMsgUpd struct {
	Msg []byte
}

// WillMsgResp (0x1D) answers a WILLMSGUPD.
type WillMsgResp struct {
	ReturnCode ReturnCode
}

// Encapsulated (0xFE) wraps a message relayed by a forwarder. Its Length
// covers only Ctrl and NodeID; the complete inner message follows.
type Encapsulated struct {
	Radius byte   // Ctrl bits 1–0, meaningful from gateway to forwarder
	NodeID []byte // WirelessNodeId, opaque to the gateway
	Inner  Packet // any message but another Encapsulated
}

// Type returns [TypeAdvertise].
func (*Advertise) Type() MsgType                { return TypeAdvertise }
func (*Advertise) bodyLen() int                 { return 3 }
func (*Advertise) check() error                 { return nil }
func (p *Advertise) appendBody(b []byte) []byte { return put16(append(b, p.GwID), p.Duration) }

// Type returns [TypeSearchGW].
func (*SearchGW) Type() MsgType                { return TypeSearchGW }
func (*SearchGW) bodyLen() int                 { return 1 }
func (*SearchGW) check() error                 { return nil }
func (p *SearchGW) appendBody(b []byte) []byte { return append(b, p.Radius) }

// Type returns [TypeGWInfo].
func (*GWInfo) Type() MsgType                { return TypeGWInfo }
func (p *GWInfo) bodyLen() int               { return 1 + len(p.GwAdd) }
func (*GWInfo) check() error                 { return nil }
func (p *GWInfo) appendBody(b []byte) []byte { return append(append(b, p.GwID), p.GwAdd...) }

// Type returns [TypeConnect].
func (*Connect) Type() MsgType  { return TypeConnect }
func (p *Connect) bodyLen() int { return 4 + len(p.ClientID) }
func (*Connect) check() error   { return nil }

// Type returns [TypeConnack].
func (*Connack) Type() MsgType                { return TypeConnack }
func (*Connack) bodyLen() int                 { return 1 }
func (p *Connack) check() error               { return checkRC(p.ReturnCode) }
func (p *Connack) appendBody(b []byte) []byte { return append(b, byte(p.ReturnCode)) }

// Type returns [TypeWillTopicReq].
func (*WillTopicReq) Type() MsgType              { return TypeWillTopicReq }
func (*WillTopicReq) bodyLen() int               { return 0 }
func (*WillTopicReq) check() error               { return nil }
func (*WillTopicReq) appendBody(b []byte) []byte { return b }

// Type returns [TypeWillTopic].
func (*WillTopic) Type() MsgType                { return TypeWillTopic }
func (p *WillTopic) bodyLen() int               { return willTopicLen(p.Topic) }
func (p *WillTopic) check() error               { return checkWillQoS(p.QoS) }
func (p *WillTopic) appendBody(b []byte) []byte { return appendWillTopic(b, p.QoS, p.Retain, p.Topic) }

// Type returns [TypeWillMsgReq].
func (*WillMsgReq) Type() MsgType              { return TypeWillMsgReq }
func (*WillMsgReq) bodyLen() int               { return 0 }
func (*WillMsgReq) check() error               { return nil }
func (*WillMsgReq) appendBody(b []byte) []byte { return b }

// Type returns [TypeWillMsg].
func (*WillMsg) Type() MsgType                { return TypeWillMsg }
func (p *WillMsg) bodyLen() int               { return len(p.Msg) }
func (*WillMsg) check() error                 { return nil }
func (p *WillMsg) appendBody(b []byte) []byte { return append(b, p.Msg...) }

// Type returns [TypePingreq].
func (*Pingreq) Type() MsgType                { return TypePingreq }
func (p *Pingreq) bodyLen() int               { return len(p.ClientID) }
func (*Pingreq) check() error                 { return nil }
func (p *Pingreq) appendBody(b []byte) []byte { return append(b, p.ClientID...) }

// Type returns [TypePingresp].
func (*Pingresp) Type() MsgType              { return TypePingresp }
func (*Pingresp) bodyLen() int               { return 0 }
func (*Pingresp) check() error               { return nil }
func (*Pingresp) appendBody(b []byte) []byte { return b }

// Type returns [TypeDisconnect].
func (*Disconnect) Type() MsgType { return TypeDisconnect }
func (*Disconnect) check() error  { return nil }

// Type returns [TypeWillTopicUpd].
func (*WillTopicUpd) Type() MsgType  { return TypeWillTopicUpd }
func (p *WillTopicUpd) bodyLen() int { return willTopicLen(p.Topic) }
func (p *WillTopicUpd) check() error { return checkWillQoS(p.QoS) }
func (p *WillTopicUpd) appendBody(b []byte) []byte {
	return appendWillTopic(b, p.QoS, p.Retain, p.Topic)
}

// Type returns [TypeWillTopicResp].
func (*WillTopicResp) Type() MsgType                { return TypeWillTopicResp }
func (*WillTopicResp) bodyLen() int                 { return 1 }
func (p *WillTopicResp) check() error               { return checkRC(p.ReturnCode) }
func (p *WillTopicResp) appendBody(b []byte) []byte { return append(b, byte(p.ReturnCode)) }

// Type returns [TypeWillMsgUpd].
func (*WillMsgUpd) Type() MsgType                { return TypeWillMsgUpd }
func (p *WillMsgUpd) bodyLen() int               { return len(p.Msg) }
func (*WillMsgUpd) check() error                 { return nil }
func (p *WillMsgUpd) appendBody(b []byte) []byte { return append(b, p.Msg...) }

// Type returns [TypeWillMsgResp].
func (*WillMsgResp) Type() MsgType                { return TypeWillMsgResp }
func (*WillMsgResp) bodyLen() int                 { return 1 }
func (p *WillMsgResp) check() error               { return checkRC(p.ReturnCode) }
func (p *WillMsgResp) appendBody(b []byte) []byte { return append(b, byte(p.ReturnCode)) }

// Type returns [TypeEncapsulated].
func (*Encapsulated) Type() MsgType  { return TypeEncapsulated }
func (p *Encapsulated) bodyLen() int { return 1 + len(p.NodeID) }

func (p *Connect) appendBody(b []byte) []byte {
	var f byte
	if p.Will {
		f |= flagWill
	}
	if p.CleanSession {
		f |= flagClean
	}
	b = put16(append(b, f, 0x01), p.Duration)
	return append(b, p.ClientID...)
}

func (p *Disconnect) bodyLen() int {
	if p.HasDuration {
		return 2
	}
	return 0
}

func (p *Disconnect) appendBody(b []byte) []byte {
	if p.HasDuration {
		return put16(b, p.Duration)
	}
	return b
}

func (p *Encapsulated) check() error {
	if p.Inner == nil {
		return fmt.Errorf("%w: encapsulated without inner message", ErrInvalidPacket)
	}
	if _, ok := p.Inner.(*Encapsulated); ok {
		return fmt.Errorf("%w: nested encapsulation", ErrInvalidPacket)
	}
	if p.Radius > 3 {
		return fmt.Errorf("%w: radius %d above 3", ErrInvalidPacket, p.Radius)
	}
	return p.Inner.check()
}

func (p *Encapsulated) appendBody(b []byte) []byte {
	return append(append(b, p.Radius&0x03), p.NodeID...)
}

func checkRC(rc ReturnCode) error {
	if rc > RejectedNotSupported {
		return fmt.Errorf("%w: reserved return code %#02x", ErrInvalidPacket, byte(rc))
	}
	return nil
}

func checkWillQoS(q QoS) error {
	if !q.valid() {
		return fmt.Errorf("%w: will qos %d", ErrInvalidPacket, q)
	}
	return nil
}

func willTopicLen(topic string) int {
	if topic == "" {
		return 0
	}
	return 1 + len(topic)
}

func appendWillTopic(b []byte, q QoS, retain bool, topic string) []byte {
	if topic == "" {
		return b
	}
	f := q.bits()
	if retain {
		f |= flagRetain
	}
	return append(append(b, f), topic...)
}

func decodeAdvertise(b []byte) (Packet, error) {
	if err := needLen(b, 3, "ADVERTISE"); err != nil {
		return nil, err
	}
	return &Advertise{GwID: b[0], Duration: be16(b[1:])}, nil
}

func decodeSearchGW(b []byte) (Packet, error) {
	if err := needLen(b, 1, "SEARCHGW"); err != nil {
		return nil, err
	}
	return &SearchGW{Radius: b[0]}, nil
}

func decodeGWInfo(b []byte) (Packet, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: GWINFO without GwId", ErrTruncated)
	}
	return &GWInfo{GwID: b[0], GwAdd: clone(b[1:])}, nil
}

func decodeConnect(b []byte) (Packet, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: CONNECT body %d bytes", ErrTruncated, len(b))
	}
	if b[1] != 0x01 {
		return nil, fmt.Errorf("%w: CONNECT protocol id %#02x", ErrMalformed, b[1])
	}
	return &Connect{
		Will:         b[0]&flagWill != 0,
		CleanSession: b[0]&flagClean != 0,
		Duration:     be16(b[2:]),
		ClientID:     string(b[4:]),
	}, nil
}

// decodeWillTopic decodes WILLTOPIC or WILLTOPICUPD. Flags without a topic
// are read as the empty (deleting) form.
func decodeWillTopic(upd bool) func([]byte) (Packet, error) {
	return func(b []byte) (Packet, error) {
		var (
			q      QoS
			retain bool
			topic  string
		)
		if len(b) > 1 {
			q, retain, topic = qosFromFlags(b[0]), b[0]&flagRetain != 0, string(b[1:])
		}
		if upd {
			return &WillTopicUpd{QoS: q, Retain: retain, Topic: topic}, nil
		}
		return &WillTopic{QoS: q, Retain: retain, Topic: topic}, nil
	}
}

func decodeDisconnect(b []byte) (Packet, error) {
	switch len(b) {
	case 0:
		return &Disconnect{}, nil
	case 2:
		return &Disconnect{HasDuration: true, Duration: be16(b)}, nil
	}
	return nil, fmt.Errorf("%w: DISCONNECT body %d bytes", ErrLength, len(b))
}
