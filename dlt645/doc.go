// Package dlt645 implements the DL/T 645-2007 meter protocol (and the
// read side of DL/T 645-1997) used by Chinese electricity meters on RS-485
// and infrared links.
//
// It has three layers:
//
//   - a codec: [Frame], [Decode], [Frame.Append] and a resynchronising
//     stream splitter, [Reader];
//   - data helpers: data identifiers ([DI], [DI97]), BCD and the fixed-point
//     formats of the standard ([Format], [Value]), dates and times, and
//     request builders such as [ReadData] and [BroadcastTime];
//   - two ends of a link: [Client], a master that reads meters over any
//     [io.ReadWriter] with timeouts and retries, and [Meter], a simulated
//     meter that answers strictly by DI.
//
// Frames on the wire look like
//
//	[FE × 0..4] 68 A0..A5 68 C L D0..D(L-1) CS 16
//
// where the address is six BCD bytes, lowest digits first, every data byte
// is sent plus 0x33, and CS is the byte sum modulo 256 from the first 68 to
// the last data byte. [Frame.Data] always holds the decoded bytes (minus
// 0x33). Multi-byte values, including the DI, go least significant byte
// first.
//
// The package uses the standard library only and stores nothing.
package dlt645
