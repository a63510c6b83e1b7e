package handheld

import (
	"errors"
	"fmt"
)

// ErrInvalid is returned (wrapped) for a request the handheld refuses because of what it asks:
// a bad argument, an unknown operation. Nothing was changed.
var ErrInvalid = errors.New("invalid request")

// ErrOffline is returned by [Handheld.Query] when ops' answer could not come: the PDA link is
// down or the deadline passed. The answer returned with it is the cached one, if any.
var ErrOffline = errors.New("offline")

// ErrTerminalRefused is returned (wrapped) when a terminal answered a command with a code
// other than OK.
var ErrTerminalRefused = errors.New("terminal refused the command")

// inputError is an [ErrInvalid] whose message names what is wrong, without a prefix.
type inputError string

func (e inputError) Error() string { return string(e) }

func (e inputError) Is(target error) bool { return target == ErrInvalid }

func inputErrorf(format string, args ...any) error {
	return inputError(fmt.Sprintf(format, args...))
}
