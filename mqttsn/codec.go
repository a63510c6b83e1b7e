package mqttsn

import (
	"errors"
	"fmt"
)

// Decoding errors. Every error returned by [Decode] wraps [ErrMalformed].
var (
	// ErrMalformed is wrapped by every error that [Decode] returns.
	ErrMalformed = errors.New("malformed mqtt-sn message")
	// ErrTruncated is returned when a message is shorter than its fields.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	// ErrLength is returned when the Length field disagrees with the
	// datagram or frame that carried the message, or is out of range.
	ErrLength = fmt.Errorf("%w: bad length", ErrMalformed)
	// ErrReservedType is returned for a reserved MsgType code.
	ErrReservedType = fmt.Errorf("%w: reserved message type", ErrMalformed)
	// ErrReservedTopicIDType is returned for TopicIdType 0b11.
	ErrReservedTopicIDType = fmt.Errorf("%w: reserved topic id type", ErrMalformed)
	// ErrReservedReturnCode is returned for a return code of 0x04 or above.
	ErrReservedReturnCode = fmt.Errorf("%w: reserved return code", ErrMalformed)
)

// ErrTooLong is returned by [Append] for a message over 65 535 bytes.
var ErrTooLong = errors.New("mqtt-sn message too long")

// ErrInvalidPacket is returned by [Append] for a packet whose fields cannot
// be encoded (an unknown QoS, a reserved TopicIdType, QoS −1 on a normal
// topic id, a missing inner message).
var ErrInvalidPacket = errors.New("invalid mqtt-sn packet")

// MaxLen is the largest MQTT-SN message, in bytes (long length form).
const MaxLen = 65535

// Packet is one MQTT-SN message. The concrete types are pointers to the
// structs of this package ([*Publish], [*Connect], ...). [Decode] returns
// them and [Append] encodes them.
type Packet interface {
	// Type returns the MsgType code.
	Type() MsgType
	// bodyLen is the number of bytes after the MsgType byte.
	bodyLen() int
	// appendBody appends the bytes after the MsgType byte.
	appendBody(dst []byte) []byte
	// check reports fields that cannot be encoded.
	check() error
}

// Decode parses one complete MQTT-SN message. b must hold exactly one
// message: a Length that disagrees with len(b) is rejected, except for
// [Encapsulated], whose Length covers its own header and whose inner message
// fills the rest of b. Decode never panics, copies what it keeps (the caller
// may reuse b) and allocates at most about len(b) bytes. Every error wraps
// [ErrMalformed].
func Decode(b []byte) (Packet, error) {
	t, body, rest, err := splitHeader(b)
	if err != nil {
		return nil, err
	}
	if t == TypeEncapsulated {
		return decodeEncapsulated(body, rest)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: length field %d, message %d bytes", ErrLength, len(b)-len(rest), len(b))
	}
	dec, ok := decoders[t]
	if !ok {
		return nil, fmt.Errorf("%w: %#02x", ErrReservedType, byte(t))
	}
	return dec(body)
}

// splitHeader parses the Length and MsgType. It returns the body (the bytes
// after MsgType up to Length) and whatever follows Length in b.
func splitHeader(b []byte) (t MsgType, body, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	var n, hdr int
	if b[0] == 0x01 {
		if len(b) < 4 {
			return 0, nil, nil, fmt.Errorf("%w: long header in %d bytes", ErrTruncated, len(b))
		}
		n, hdr = int(b[1])<<8|int(b[2]), 3
	} else {
		n, hdr = int(b[0]), 1
	}
	if n < hdr+1 {
		return 0, nil, nil, fmt.Errorf("%w: length field %d", ErrLength, n)
	}
	if n > len(b) {
		return 0, nil, nil, fmt.Errorf("%w: length field %d, message %d bytes", ErrLength, n, len(b))
	}
	return MsgType(b[hdr]), b[hdr+1 : n], b[n:], nil
}

// Append appends the encoding of p to dst and returns the extended slice.
// It uses the short length form when the message fits in 255 bytes and the
// long (0x01) form otherwise, so it never emits a short form of 256 bytes
// or more. Bits that a message does not use are sent as 0, and MsgId is
// sent as 0 in a PUBLISH at QoS 0 or −1.
func Append(dst []byte, p Packet) ([]byte, error) {
	if p == nil {
		return dst, fmt.Errorf("%w: nil packet", ErrInvalidPacket)
	}
	if err := p.check(); err != nil {
		return dst, err
	}
	n := 1 + p.bodyLen() // MsgType and body
	dst, err := appendHeader(dst, n, p.Type())
	if err != nil {
		return dst, err
	}
	dst = p.appendBody(dst)
	if e, ok := p.(*Encapsulated); ok {
		return Append(dst, e.Inner)
	}
	return dst, nil
}

// appendHeader appends the Length field (covering n more bytes, MsgType
// included) and the MsgType.
func appendHeader(dst []byte, n int, t MsgType) ([]byte, error) {
	switch {
	case n+1 <= 255:
		return append(dst, byte(n+1), byte(t)), nil
	case n+3 <= MaxLen:
		return append(dst, 0x01, byte((n+3)>>8), byte(n+3), byte(t)), nil
	default:
		return dst, fmt.Errorf("%w: %d bytes", ErrTooLong, n+3)
	}
}

// Len returns the encoded size of p in bytes, header included.
func Len(p Packet) int {
	n := 1 + p.bodyLen()
	if n+1 <= 255 {
		n++
	} else {
		n += 3
	}
	if e, ok := p.(*Encapsulated); ok && e.Inner != nil {
		n += Len(e.Inner)
	}
	return n
}

// decoders maps each non-reserved MsgType (except Encapsulated) to the
// decoder of its body.
var decoders = map[MsgType]func([]byte) (Packet, error){
	TypeAdvertise:     decodeAdvertise,
	TypeSearchGW:      decodeSearchGW,
	TypeGWInfo:        decodeGWInfo,
	TypeConnect:       decodeConnect,
	TypeConnack:       rcDecoder(func(rc ReturnCode) Packet { return &Connack{ReturnCode: rc} }),
	TypeWillTopicReq:  emptyDecoder(func() Packet { return &WillTopicReq{} }),
	TypeWillTopic:     decodeWillTopic(false),
	TypeWillMsgReq:    emptyDecoder(func() Packet { return &WillMsgReq{} }),
	TypeWillMsg:       func(b []byte) (Packet, error) { return &WillMsg{Msg: clone(b)}, nil },
	TypeRegister:      decodeRegister,
	TypeRegack:        decodeRegack,
	TypePublish:       decodePublish,
	TypePuback:        decodePuback,
	TypePubcomp:       msgIDDecoder(func(id uint16) Packet { return &Pubcomp{MsgID: id} }),
	TypePubrec:        msgIDDecoder(func(id uint16) Packet { return &Pubrec{MsgID: id} }),
	TypePubrel:        msgIDDecoder(func(id uint16) Packet { return &Pubrel{MsgID: id} }),
	TypeSubscribe:     decodeSubscribe,
	TypeSuback:        decodeSuback,
	TypeUnsubscribe:   decodeUnsubscribe,
	TypeUnsuback:      msgIDDecoder(func(id uint16) Packet { return &Unsuback{MsgID: id} }),
	TypePingreq:       func(b []byte) (Packet, error) { return &Pingreq{ClientID: string(b)}, nil },
	TypePingresp:      emptyDecoder(func() Packet { return &Pingresp{} }),
	TypeDisconnect:    decodeDisconnect,
	TypeWillTopicUpd:  decodeWillTopic(true),
	TypeWillTopicResp: rcDecoder(func(rc ReturnCode) Packet { return &WillTopicResp{ReturnCode: rc} }),
	TypeWillMsgUpd:    func(b []byte) (Packet, error) { return &WillMsgUpd{Msg: clone(b)}, nil },
	TypeWillMsgResp:   rcDecoder(func(rc ReturnCode) Packet { return &WillMsgResp{ReturnCode: rc} }),
}

func decodeEncapsulated(body, inner []byte) (Packet, error) {
	if len(body) < 1 {
		return nil, fmt.Errorf("%w: encapsulated without ctrl", ErrTruncated)
	}
	if len(inner) == 0 {
		return nil, fmt.Errorf("%w: encapsulated without inner message", ErrTruncated)
	}
	if _, _, _, err := splitHeader(inner); err == nil && innerType(inner) == TypeEncapsulated {
		return nil, fmt.Errorf("%w: nested encapsulation", ErrMalformed)
	}
	p, err := Decode(inner)
	if err != nil {
		return nil, fmt.Errorf("encapsulated: %w", err)
	}
	return &Encapsulated{Radius: body[0] & 0x03, NodeID: clone(body[1:]), Inner: p}, nil
}

func innerType(b []byte) MsgType {
	if b[0] == 0x01 {
		return MsgType(b[3])
	}
	return MsgType(b[1])
}

// clone copies b, returning nil for an empty slice so that decoded values
// compare equal to zero values.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func put16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func needLen(b []byte, n int, what string) error {
	if len(b) != n {
		return fmt.Errorf("%w: %s body %d bytes, want %d", ErrLength, what, len(b), n)
	}
	return nil
}

func emptyDecoder(f func() Packet) func([]byte) (Packet, error) {
	return func(b []byte) (Packet, error) {
		p := f()
		if err := needLen(b, 0, p.Type().String()); err != nil {
			return nil, err
		}
		return p, nil
	}
}

func rcDecoder(f func(ReturnCode) Packet) func([]byte) (Packet, error) {
	return func(b []byte) (Packet, error) {
		if len(b) != 1 {
			return nil, fmt.Errorf("%w: return code message body %d bytes", ErrLength, len(b))
		}
		rc, err := decodeRC(b[0])
		if err != nil {
			return nil, err
		}
		return f(rc), nil
	}
}

func msgIDDecoder(f func(uint16) Packet) func([]byte) (Packet, error) {
	return func(b []byte) (Packet, error) {
		if len(b) != 2 {
			return nil, fmt.Errorf("%w: msgid message body %d bytes", ErrLength, len(b))
		}
		return f(be16(b)), nil
	}
}

func decodeRC(b byte) (ReturnCode, error) {
	if b > byte(RejectedNotSupported) {
		return 0, fmt.Errorf("%w: %#02x", ErrReservedReturnCode, b)
	}
	return ReturnCode(b), nil
}
