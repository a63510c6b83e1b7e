package mqttsn

import (
	"errors"
	"fmt"
)

// Errors returned by [Client] and [Gateway] methods.
var (
	// ErrConnectionLost is returned once the connection has been declared
	// lost (no answer after MaxRetries retransmissions, or an unsolicited
	// DISCONNECT from the gateway), until Connect succeeds again.
	ErrConnectionLost = errors.New("mqtt-sn connection lost")
	// ErrTimeout is wrapped when a request got no answer after MaxRetries
	// retransmissions.
	ErrTimeout = errors.New("mqtt-sn request timed out")
	// ErrRejected is wrapped by [*RejectedError] when the peer answered
	// with a non-zero return code.
	ErrRejected = errors.New("mqtt-sn request rejected")
	// ErrNotConnected is returned by operations that need a connection
	// (or, for Wake, a sleeping one) when there is none.
	ErrNotConnected = errors.New("mqtt-sn not connected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("mqtt-sn closed")
)

// RejectedError carries the return code of a rejected request. It matches
// [ErrRejected] with errors.Is; use errors.As to read the code, for
// example to wait T_WAIT after [RejectedCongestion].
type RejectedError struct {
	Op   string     // "connect", "register", "publish", "subscribe", ...
	Code ReturnCode // never Accepted
}

// Error implements error.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s: %v", e.Op, e.Code)
}

// Is reports whether target is [ErrRejected].
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }
