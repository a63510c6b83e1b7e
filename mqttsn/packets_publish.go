package mqttsn

import "fmt"

// Register (0x0A) binds a topic name to a normal topic id. TopicID is 0
// from a client and the assigned id from the gateway.
type Register struct {
	TopicID   uint16
	MsgID     uint16
	TopicName string
}

// Regack (0x0B) answers a REGISTER.
type Regack struct {
	TopicID    uint16
	MsgID      uint16
	ReturnCode ReturnCode
}

// Publish (0x0C) carries application data. For [TopicShort], TopicID holds
// the two name characters (see [ShortTopicID]). MsgID is sent as 0 and
// decoded as 0 at QoS 0 and −1. QoS −1 requires a predefined or short topic.
type Publish struct {
	DUP         bool
	QoS         QoS
	Retain      bool
	TopicIDType TopicIDType
	TopicID     uint16
	MsgID       uint16
	Data        []byte
}

// Puback (0x0D) acknowledges a QoS 1 PUBLISH, or rejects a PUBLISH of any
// QoS (matched on TopicID at QoS 0).
type Puback struct {
	TopicID    uint16
	MsgID      uint16
	ReturnCode ReturnCode
}

// Pubcomp (0x0E) completes a QoS 2 flow.
type Pubcomp struct{ MsgID uint16 }

// Pubrec (0x0F) is the first answer to a QoS 2 PUBLISH.
type Pubrec struct{ MsgID uint16 }

// Pubrel (0x10) answers a PUBREC.
type Pubrel struct{ MsgID uint16 }

// Subscribe (0x12) subscribes to a topic name (TopicIDType [TopicNormal],
// wildcards allowed) or to a predefined or short topic id (TopicID).
type Subscribe struct {
	DUP         bool
	QoS         QoS // requested
	TopicIDType TopicIDType
	MsgID       uint16
	TopicName   string // TopicNormal only
	TopicID     uint16 // TopicPredefined and TopicShort only
}

// Suback (0x13) answers a SUBSCRIBE. TopicID is 0 for wildcard and short
// name subscriptions.
type Suback struct {
	QoS        QoS // granted
	TopicID    uint16
	MsgID      uint16
	ReturnCode ReturnCode
}

// Unsubscribe (0x14) has the layout of [Subscribe] without DUP and QoS.
type Unsubscribe struct {
	TopicIDType TopicIDType
	MsgID       uint16
	TopicName   string // TopicNormal only
	TopicID     uint16 // TopicPredefined and TopicShort only
}

// Unsuback (0x15) answers an UNSUBSCRIBE.
type Unsuback struct{ MsgID uint16 }

// Type returns [TypeRegister].
func (*Register) Type() MsgType  { return TypeRegister }
func (p *Register) bodyLen() int { return 4 + len(p.TopicName) }
func (*Register) check() error   { return nil }

// Type returns [TypeRegack].
func (*Regack) Type() MsgType  { return TypeRegack }
func (*Regack) bodyLen() int   { return 5 }
func (p *Regack) check() error { return checkRC(p.ReturnCode) }

// Type returns [TypePublish].
func (*Publish) Type() MsgType  { return TypePublish }
func (p *Publish) bodyLen() int { return 5 + len(p.Data) }

// Type returns [TypePuback].
func (*Puback) Type() MsgType  { return TypePuback }
func (*Puback) bodyLen() int   { return 5 }
func (p *Puback) check() error { return checkRC(p.ReturnCode) }

// Type returns [TypePubcomp].
func (*Pubcomp) Type() MsgType                { return TypePubcomp }
func (*Pubcomp) bodyLen() int                 { return 2 }
func (*Pubcomp) check() error                 { return nil }
func (p *Pubcomp) appendBody(b []byte) []byte { return put16(b, p.MsgID) }

// Type returns [TypePubrec].
func (*Pubrec) Type() MsgType                { return TypePubrec }
func (*Pubrec) bodyLen() int                 { return 2 }
func (*Pubrec) check() error                 { return nil }
func (p *Pubrec) appendBody(b []byte) []byte { return put16(b, p.MsgID) }

// Type returns [TypePubrel].
func (*Pubrel) Type() MsgType                { return TypePubrel }
func (*Pubrel) bodyLen() int                 { return 2 }
func (*Pubrel) check() error                 { return nil }
func (p *Pubrel) appendBody(b []byte) []byte { return put16(b, p.MsgID) }

// Type returns [TypeSubscribe].
func (*Subscribe) Type() MsgType { return TypeSubscribe }

// Type returns [TypeSuback].
func (*Suback) Type() MsgType { return TypeSuback }
func (*Suback) bodyLen() int  { return 6 }

// Type returns [TypeUnsubscribe].
func (*Unsubscribe) Type() MsgType { return TypeUnsubscribe }

// Type returns [TypeUnsuback].
func (*Unsuback) Type() MsgType                { return TypeUnsuback }
func (*Unsuback) bodyLen() int                 { return 2 }
func (*Unsuback) check() error                 { return nil }
func (p *Unsuback) appendBody(b []byte) []byte { return put16(b, p.MsgID) }

func (p *Register) appendBody(b []byte) []byte {
	return append(put16(put16(b, p.TopicID), p.MsgID), p.TopicName...)
}

func (p *Regack) appendBody(b []byte) []byte {
	return append(put16(put16(b, p.TopicID), p.MsgID), byte(p.ReturnCode))
}

func (p *Publish) check() error {
	if !p.QoS.valid() {
		return fmt.Errorf("%w: publish qos %d", ErrInvalidPacket, p.QoS)
	}
	if p.TopicIDType > TopicShort {
		return fmt.Errorf("%w: %v", ErrInvalidPacket, ErrReservedTopicIDType)
	}
	if p.QoS == QoSMinus1 && p.TopicIDType == TopicNormal {
		return fmt.Errorf("%w: qos -1 needs a predefined or short topic", ErrInvalidPacket)
	}
	return nil
}

func (p *Publish) appendBody(b []byte) []byte {
	f := p.QoS.bits() | byte(p.TopicIDType)
	if p.DUP {
		f |= flagDUP
	}
	if p.Retain {
		f |= flagRetain
	}
	msgID := p.MsgID
	if p.QoS <= QoS0 {
		msgID = 0
	}
	return append(put16(put16(append(b, f), p.TopicID), msgID), p.Data...)
}

func (p *Puback) appendBody(b []byte) []byte {
	return append(put16(put16(b, p.TopicID), p.MsgID), byte(p.ReturnCode))
}

func (p *Subscribe) bodyLen() int { return 3 + topicFieldLen(p.TopicIDType, p.TopicName) }

func (p *Subscribe) check() error {
	if !p.QoS.valid() {
		return fmt.Errorf("%w: subscribe qos %d", ErrInvalidPacket, p.QoS)
	}
	return checkTopicType(p.TopicIDType)
}

func (p *Subscribe) appendBody(b []byte) []byte {
	f := p.QoS.bits() | byte(p.TopicIDType)
	if p.DUP {
		f |= flagDUP
	}
	return appendTopicField(put16(append(b, f), p.MsgID), p.TopicIDType, p.TopicName, p.TopicID)
}

func (p *Suback) check() error {
	if !p.QoS.valid() {
		return fmt.Errorf("%w: suback qos %d", ErrInvalidPacket, p.QoS)
	}
	return checkRC(p.ReturnCode)
}

func (p *Suback) appendBody(b []byte) []byte {
	return append(put16(put16(append(b, p.QoS.bits()), p.TopicID), p.MsgID), byte(p.ReturnCode))
}

func (p *Unsubscribe) bodyLen() int { return 3 + topicFieldLen(p.TopicIDType, p.TopicName) }
func (p *Unsubscribe) check() error { return checkTopicType(p.TopicIDType) }

func (p *Unsubscribe) appendBody(b []byte) []byte {
	b = put16(append(b, byte(p.TopicIDType)), p.MsgID)
	return appendTopicField(b, p.TopicIDType, p.TopicName, p.TopicID)
}

func checkTopicType(t TopicIDType) error {
	if t > TopicShort {
		return fmt.Errorf("%w: %v", ErrInvalidPacket, ErrReservedTopicIDType)
	}
	return nil
}

func topicFieldLen(t TopicIDType, name string) int {
	if t == TopicNormal {
		return len(name)
	}
	return 2
}

func appendTopicField(b []byte, t TopicIDType, name string, id uint16) []byte {
	if t == TopicNormal {
		return append(b, name...)
	}
	return put16(b, id)
}

func decodeRegister(b []byte) (Packet, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: REGISTER body %d bytes", ErrTruncated, len(b))
	}
	return &Register{TopicID: be16(b), MsgID: be16(b[2:]), TopicName: string(b[4:])}, nil
}

func decodeRegack(b []byte) (Packet, error) {
	if err := needLen(b, 5, "REGACK"); err != nil {
		return nil, err
	}
	rc, err := decodeRC(b[4])
	if err != nil {
		return nil, err
	}
	return &Regack{TopicID: be16(b), MsgID: be16(b[2:]), ReturnCode: rc}, nil
}

func decodePublish(b []byte) (Packet, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("%w: PUBLISH body %d bytes", ErrTruncated, len(b))
	}
	tt, err := topicTypeFromFlags(b[0])
	if err != nil {
		return nil, err
	}
	p := &Publish{
		DUP:         b[0]&flagDUP != 0,
		QoS:         qosFromFlags(b[0]),
		Retain:      b[0]&flagRetain != 0,
		TopicIDType: tt,
		TopicID:     be16(b[1:]),
		MsgID:       be16(b[3:]),
		Data:        clone(b[5:]),
	}
	if p.QoS <= QoS0 {
		p.MsgID = 0 // pitfall 2: ignore the value at QoS 0 and -1
	}
	if p.QoS == QoSMinus1 && tt == TopicNormal {
		return nil, fmt.Errorf("%w: qos -1 publish on a normal topic id", ErrMalformed)
	}
	return p, nil
}

func decodePuback(b []byte) (Packet, error) {
	if err := needLen(b, 5, "PUBACK"); err != nil {
		return nil, err
	}
	rc, err := decodeRC(b[4])
	if err != nil {
		return nil, err
	}
	return &Puback{TopicID: be16(b), MsgID: be16(b[2:]), ReturnCode: rc}, nil
}

// decodeTopicField reads the name (TopicNormal) or the 2-byte id.
func decodeTopicField(t TopicIDType, b []byte) (name string, id uint16, err error) {
	if t == TopicNormal {
		return string(b), 0, nil
	}
	if len(b) != 2 {
		return "", 0, fmt.Errorf("%w: topic id field %d bytes", ErrLength, len(b))
	}
	return "", be16(b), nil
}

// topicRequest is the body SUBSCRIBE and UNSUBSCRIBE share: Flags MsgId TopicName|TopicId.
type topicRequest struct {
	flags byte
	tt    TopicIDType
	msgID uint16
	name  string
	id    uint16
}

func decodeTopicRequest(b []byte, what string) (topicRequest, error) {
	if len(b) < 3 {
		return topicRequest{}, fmt.Errorf("%w: %s body %d bytes", ErrTruncated, what, len(b))
	}
	tt, err := topicTypeFromFlags(b[0])
	if err != nil {
		return topicRequest{}, err
	}
	name, id, err := decodeTopicField(tt, b[3:])
	if err != nil {
		return topicRequest{}, err
	}
	return topicRequest{flags: b[0], tt: tt, msgID: be16(b[1:]), name: name, id: id}, nil
}

func decodeSubscribe(b []byte) (Packet, error) {
	r, err := decodeTopicRequest(b, "SUBSCRIBE")
	if err != nil {
		return nil, err
	}
	return &Subscribe{
		DUP: r.flags&flagDUP != 0, QoS: qosFromFlags(r.flags), TopicIDType: r.tt,
		MsgID: r.msgID, TopicName: r.name, TopicID: r.id,
	}, nil
}

func decodeUnsubscribe(b []byte) (Packet, error) {
	r, err := decodeTopicRequest(b, "UNSUBSCRIBE")
	if err != nil {
		return nil, err
	}
	return &Unsubscribe{TopicIDType: r.tt, MsgID: r.msgID, TopicName: r.name, TopicID: r.id}, nil
}

func decodeSuback(b []byte) (Packet, error) {
	if err := needLen(b, 6, "SUBACK"); err != nil {
		return nil, err
	}
	rc, err := decodeRC(b[5])
	if err != nil {
		return nil, err
	}
	return &Suback{QoS: qosFromFlags(b[0]), TopicID: be16(b[1:]), MsgID: be16(b[3:]), ReturnCode: rc}, nil
}
