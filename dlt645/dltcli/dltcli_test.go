package dltcli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, hex string
		want      Decoded
	}{
		{"read request (vector 1)", "68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16",
			Decoded{Address: "000000000161", Control: "11", Direction: "request", Function: "11", DI: "00010000"}},
		{"energy reply with preamble (vector 9)", "FE FE FE FE 68 94 35 21 90 88 55 68 91 08 33 33 34 33 59 35 33 33 81 16",
			Decoded{Address: "558890213594", Control: "91", Direction: "reply", Function: "11", DI: "00010000", Value: "2.26 kWh", DataHex: "26020000", Preamble: 4}},
		{"error reply", "68 61 01 00 00 00 00 68 D1 01 35 39 16",
			Decoded{Address: "000000000161", Control: "D1", Direction: "reply", Function: "11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Control == "D1" {
				if got.Error == "" {
					t.Errorf("error reply decoded without an error: %+v", got)
				}
				return
			}
			if got.Address != tt.want.Address || got.Control != tt.want.Control || got.Direction != tt.want.Direction ||
				got.DI != tt.want.DI || got.Value != tt.want.Value || got.Preamble != tt.want.Preamble {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"zz", "68 61 01 00 00 00 00 68 11 04 33 33 34 33 15 16", "68 61"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestMain(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Main(context.Background(), []string{"decode", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"value": "0.26 kWh"`) {
		t.Errorf("decode output %s, want 0.26 kWh", out.String())
	}
	if err := Main(context.Background(), []string{"read", "-port", "/nonexistent/tty", "-di", "00010000"}, func(string) string { return "" }, &out, &errb); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("read on a missing port: err = %v, want it named", err)
	}
	if err := Main(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &errb); err == nil {
		t.Error("unknown command accepted")
	}
}
