// Package rs485 is the terminal's channel-16 meter bus: it reads import
// energy (and, where the meter has them, export energy, power, voltage and
// current) from the meters on one RS-485 line, speaking Modbus RTU (or
// Modbus TCP / RTU over TCP through a gateway) or DL/T 645-2007/1997.
//
// A [Poller] owns the line. The terminal builds a [Config], calls [New]
// once, calls [Poller.Poll] on its read schedule and turns each [Result]
// into a reading or, for an error wrapping [ErrMeterSilent], a
// "meter_silent" event. Modbus meters are described by register maps
// (package regmap), not code; DL/T 645 meters by their address alone.
//
// The package publishes and stores nothing itself; it is the only place in
// the terminal that imports simonvetter/modbus.
package rs485
