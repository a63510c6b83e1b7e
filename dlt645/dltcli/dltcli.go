// Package dltcli is `meterlink dlt645`: a field engineer's DL/T 645 tool, used like mbpoll.
// `decode HEX` prints a frame as JSON; `read -port DEV -addr ADDR -di DI` reads a meter.
package dltcli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/dlt645"
)

// Decoded is the JSON form of a decoded frame.
type Decoded struct {
	Address   string   `json:"address"`
	Control   string   `json:"control"`            // hex, e.g. "91"
	Direction string   `json:"direction"`          // "request" or "reply"
	Function  string   `json:"function"`           // hex function code
	Error     string   `json:"error,omitempty"`    // a meter's error reply, decoded
	DI        string   `json:"di,omitempty"`       // data identifier, DI3..DI0
	Value     string   `json:"value,omitempty"`    // decoded value with unit
	DataHex   string   `json:"data_hex,omitempty"` // data bytes after the DI (minus 0x33)
	Preamble  int      `json:"skipped_bytes"`      // bytes before the frame (FE preamble)
	Notes     []string `json:"notes,omitempty"`
}

// Decode decodes one frame given as hex (spaces allowed).
func Decode(s string) (Decoded, error) {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return Decoded{}, fmt.Errorf("not hex: %w", err)
	}
	f, n, err := dlt645.Decode(b)
	if err != nil {
		return Decoded{}, err
	}
	start := 0
	for start < len(b) && b[start] == 0xFE {
		start++
	}
	d := Decoded{
		Address: f.Addr.String(), Control: fmt.Sprintf("%02X", f.Control), Function: fmt.Sprintf("%02X", f.Function()),
		Direction: "request", Preamble: start,
	}
	if n < len(b) {
		d.Notes = append(d.Notes, fmt.Sprintf("%d bytes after the frame ignored", len(b)-n))
	}
	if f.IsReply() {
		d.Direction = "reply"
	}
	if err := f.Err(); err != nil {
		d.Error = err.Error()
		return d, nil
	}
	switch f.Function() {
	case 0x11:
		if len(f.Data) >= 4 {
			di, _ := dlt645.DecodeDI(f.Data)
			d.DI = fmt.Sprintf("%08X", uint32(di))
			if f.IsReply() {
				if v, err := dlt645.DecodeValue(di, f.Data[4:]); err == nil {
					d.Value = v.String()
				} else {
					d.Notes = append(d.Notes, "value: "+err.Error())
				}
				d.DataHex = hex.EncodeToString(f.Data[4:])
			}
		}
	case 0x01:
		if len(f.Data) >= 2 {
			di, _ := dlt645.DecodeDI97(f.Data)
			d.DI = fmt.Sprintf("%04X", uint16(di))
			if f.IsReply() {
				if v, err := dlt645.DecodeValue97(di, f.Data[2:]); err == nil {
					d.Value = v.String()
				}
				d.DataHex = hex.EncodeToString(f.Data[2:])
			}
		}
	default:
		d.DataHex = hex.EncodeToString(f.Data)
	}
	return d, nil
}

// Main runs `meterlink dlt645 decode|read`.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := "usage: meterlink dlt645 decode HEX | meterlink dlt645 read -port DEV -addr ADDR -di DI"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("dlt645: name a command: decode or read")
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "decode":
		if len(args) < 2 {
			return errors.New("dlt645 decode: give the frame as hex, e.g. \"68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16\"")
		}
		d, err := Decode(strings.Join(args[1:], " "))
		if err != nil {
			return fmt.Errorf("dlt645 decode: %w", err)
		}
		return enc.Encode(d)
	case "read":
		fs := cmdline.NewFlagSet("dlt645 read", "Reads one data identifier from a DL/T 645-2007 meter on a serial device.\n"+
			"Real ports need their line settings first (e.g. stty -F DEV 2400 cs8 parenb -parodd raw).", stderr)
		port := fs.String("port", "", "serial device, e.g. /dev/ttyUSB0")
		addr := fs.String("addr", "AAAAAAAAAAAA", "meter address, 12 digits (AA…AA: the only meter on the line)")
		diS := fs.String("di", "00010000", "data identifier DI3..DI0 in hex (00010000: forward active energy)")
		timeout := fs.Duration("timeout", time.Second, "reply timeout per attempt")
		if err := cmdline.Parse(fs, args[1:], getenv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		a, err := dlt645.ParseAddress(*addr)
		if err != nil {
			return fmt.Errorf("addr %q: %w", *addr, err)
		}
		di, err := strconv.ParseUint(*diS, 16, 32)
		if err != nil || len(*diS) != 8 {
			return fmt.Errorf("di %q: want 8 hex digits", *diS)
		}
		if *port == "" {
			return errors.New("port: name the serial device")
		}
		f, err := os.OpenFile(*port, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("port: %w", err)
		}
		defer f.Close()
		c := dlt645.NewClient(f, dlt645.ClientOptions{Timeout: *timeout})
		v, err := c.ReadValue(ctx, a, dlt645.DI(di))
		if err != nil {
			return fmt.Errorf("read %08X from %s: %w", di, a, err)
		}
		return enc.Encode(map[string]any{"address": a.String(), "di": fmt.Sprintf("%08X", di), "value": v.String(), "float": v.Float64(), "unit": v.Unit})
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("dlt645: unknown command %q", args[0])
}
