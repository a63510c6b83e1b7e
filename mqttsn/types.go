package mqttsn

import "fmt"

// MsgType is the MQTT-SN MsgType code (spec §5.2.2).
type MsgType byte

// MsgType codes. 0x03, 0x11, 0x19, 0x1E–0xFD and 0xFF are reserved.
// Note that PUBCOMP (0x0E) precedes PUBREC (0x0F).
const (
	TypeAdvertise     MsgType = 0x00
	TypeSearchGW      MsgType = 0x01
	TypeGWInfo        MsgType = 0x02
	TypeConnect       MsgType = 0x04
	TypeConnack       MsgType = 0x05
	TypeWillTopicReq  MsgType = 0x06
	TypeWillTopic     MsgType = 0x07
	TypeWillMsgReq    MsgType = 0x08
	TypeWillMsg       MsgType = 0x09
	TypeRegister      MsgType = 0x0A
	TypeRegack        MsgType = 0x0B
	TypePublish       MsgType = 0x0C
	TypePuback        MsgType = 0x0D
	TypePubcomp       MsgType = 0x0E
	TypePubrec        MsgType = 0x0F
	TypePubrel        MsgType = 0x10
	TypeSubscribe     MsgType = 0x12
	TypeSuback        MsgType = 0x13
	TypeUnsubscribe   MsgType = 0x14
	TypeUnsuback      MsgType = 0x15
	TypePingreq       MsgType = 0x16
	TypePingresp      MsgType = 0x17
	TypeDisconnect    MsgType = 0x18
	TypeWillTopicUpd  MsgType = 0x1A
	TypeWillTopicResp MsgType = 0x1B
	TypeWillMsgUpd    MsgType = 0x1C
	TypeWillMsgResp   MsgType = 0x1D
	TypeEncapsulated  MsgType = 0xFE
)

var typeNames = map[MsgType]string{
	TypeAdvertise: "ADVERTISE", TypeSearchGW: "SEARCHGW", TypeGWInfo: "GWINFO",
	TypeConnect: "CONNECT", TypeConnack: "CONNACK", TypeWillTopicReq: "WILLTOPICREQ",
	TypeWillTopic: "WILLTOPIC", TypeWillMsgReq: "WILLMSGREQ", TypeWillMsg: "WILLMSG",
	TypeRegister: "REGISTER", TypeRegack: "REGACK", TypePublish: "PUBLISH",
	TypePuback: "PUBACK", TypePubcomp: "PUBCOMP", TypePubrec: "PUBREC",
	TypePubrel: "PUBREL", TypeSubscribe: "SUBSCRIBE", TypeSuback: "SUBACK",
	TypeUnsubscribe: "UNSUBSCRIBE", TypeUnsuback: "UNSUBACK", TypePingreq: "PINGREQ",
	TypePingresp: "PINGRESP", TypeDisconnect: "DISCONNECT", TypeWillTopicUpd: "WILLTOPICUPD",
	TypeWillTopicResp: "WILLTOPICRESP", TypeWillMsgUpd: "WILLMSGUPD",
	TypeWillMsgResp: "WILLMSGRESP", TypeEncapsulated: "ENCAPSULATED",
}

// String returns the spec's name of the message type, or its hex code.
func (t MsgType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(%#02x)", byte(t))
}

// QoS is a quality of service level: 0, 1, 2 or −1 (publish without
// connection, flag bits 0b11).
type QoS int8

// QoS levels.
const (
	QoS0      QoS = 0
	QoS1      QoS = 1
	QoS2      QoS = 2
	QoSMinus1 QoS = -1
)

func (q QoS) valid() bool { return q >= -1 && q <= 2 }

func (q QoS) bits() byte {
	if q == QoSMinus1 {
		return 0x60
	}
	return byte(q) << 5
}

func qosFromFlags(f byte) QoS {
	q := QoS(f>>5) & 3
	if q == 3 {
		return QoSMinus1
	}
	return q
}

// TopicIDType says how the TopicId field of a PUBLISH, SUBSCRIBE or
// UNSUBSCRIBE is to be read (flag bits 1–0).
type TopicIDType byte

// Topic id types. 0b11 is reserved and rejected.
const (
	// TopicNormal is a registered id; in SUBSCRIBE and UNSUBSCRIBE it
	// means the message carries a topic name.
	TopicNormal TopicIDType = 0
	// TopicPredefined is an id known in advance by client and gateway.
	TopicPredefined TopicIDType = 1
	// TopicShort is a two-character topic name carried in the id field.
	TopicShort TopicIDType = 2
)

// String returns "normal", "predefined" or "short".
func (t TopicIDType) String() string {
	switch t {
	case TopicNormal:
		return "normal"
	case TopicPredefined:
		return "predefined"
	case TopicShort:
		return "short"
	}
	return fmt.Sprintf("TopicIDType(%d)", byte(t))
}

func topicTypeFromFlags(f byte) (TopicIDType, error) {
	t := TopicIDType(f & 0x03)
	if t == 3 {
		return 0, ErrReservedTopicIDType
	}
	return t, nil
}

// ReturnCode is the ReturnCode field of CONNACK, REGACK, PUBACK, SUBACK,
// WILLTOPICRESP and WILLMSGRESP. Codes 0x04–0xFF are reserved and rejected.
type ReturnCode byte

// Return codes.
const (
	Accepted               ReturnCode = 0x00
	RejectedCongestion     ReturnCode = 0x01 // retry after T_WAIT (> 5 min)
	RejectedInvalidTopicID ReturnCode = 0x02
	RejectedNotSupported   ReturnCode = 0x03
)

// String describes the return code as the spec does.
func (rc ReturnCode) String() string {
	switch rc {
	case Accepted:
		return "accepted"
	case RejectedCongestion:
		return "rejected: congestion"
	case RejectedInvalidTopicID:
		return "rejected: invalid topic id"
	case RejectedNotSupported:
		return "rejected: not supported"
	}
	return fmt.Sprintf("ReturnCode(%#02x)", byte(rc))
}

// Flags bits (spec §5.3.4).
const (
	flagDUP    = 0x80
	flagRetain = 0x10
	flagWill   = 0x08
	flagClean  = 0x04
)

// ShortTopicID packs a two-character topic name into a TopicId. ok is
// false unless name is exactly two bytes long.
func ShortTopicID(name string) (id uint16, ok bool) {
	if len(name) != 2 {
		return 0, false
	}
	return uint16(name[0])<<8 | uint16(name[1]), true
}

// ShortTopicName unpacks a short topic name from a TopicId.
func ShortTopicName(id uint16) string {
	return string([]byte{byte(id >> 8), byte(id)})
}
