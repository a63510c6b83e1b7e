package metersim

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestMainRejectsBadFlagsNamingThem(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-speed", "0"}, "speed"},
		{[]string{"-pulse-addr", "nohostport"}, "pulse-addr"},
		{[]string{"-pulse-addr", "", "-modbus-listen", "127.0.0.1:0", "-modbus-meters", "300:sdm120"}, "modbus-meters"},
		{[]string{"-pulse-addr", "", "-modbus-listen", "127.0.0.1:0", "-modbus-meters", "1:nosuchmeter"}, "modbus-meters"},
		{[]string{"-pulse-addr", "", "-dlt645-port", "/dev/null", "-dlt645-addr", "12"}, "dlt645-addr"},
		{[]string{"-pulse-addr", ""}, "nothing to simulate"},
	} {
		var out, errb bytes.Buffer
		err := Main(context.Background(), tc.args, func(string) string { return "" }, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("meter-sim %v: err = %v, want it to name %s", tc.args, err, tc.want)
		}
	}
}

func TestMainServesModbusUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	err := Main(ctx, []string{"-pulse-addr", "", "-modbus-listen", "127.0.0.1:0", "-tick", "20ms"}, func(string) string { return "" }, &out, &errb)
	if err != nil {
		t.Fatalf("meter-sim stopped with %v\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "modbus meters serving") {
		t.Errorf("log %q does not say where the Modbus meters serve", errb.String())
	}
}
