// Package regmap describes Modbus meter register maps as data: which
// function code a meter answers, and for every quantity (voltage, power,
// import energy, ...) its register address, word count, type, word order
// and scale. Maps are JSON documents; the maps of the meters MeterLink
// supports ship embedded, one file per device under maps/, and are found
// with [Lookup].
//
// Both ends of a Modbus link use the same maps: the terminal's RS-485
// poller decodes replies with them, and the meter simulator answers with
// them, so a map is tested once from both sides.
//
// Values are in the canonical unit of their quantity ([Unit]): kWh, kvarh,
// W, var, VA, V, A, Hz, % or a plain ratio. A register's Scale converts
// the number read from the wire into that unit (a DTSU666 sends 0.1 W, so
// its power registers have Scale 0.1; a DDSU666 sends kW, so Scale 1000).
//
// The package uses the standard library only and does no I/O beyond
// reading its embedded files.
package regmap
