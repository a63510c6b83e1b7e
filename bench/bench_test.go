package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

func noenv(string) string { return "" }

func TestMainNeedsAMode(t *testing.T) {
	var out, errs bytes.Buffer
	if err := Main(context.Background(), nil, noenv, &out, &errs); err == nil {
		t.Fatal("Main() without a mode = nil, want an error")
	}
	if err := Main(context.Background(), []string{"nope"}, noenv, &out, &errs); err == nil {
		t.Fatal(`Main("nope") = nil, want an error`)
	}
}

// TestGatewaySmall runs the gateway benchmark with tiny numbers and checks its JSON.
func TestGatewaySmall(t *testing.T) {
	var out, errs bytes.Buffer
	err := Main(context.Background(), []string{"gateway", "-clients", "2", "-duration", "100ms", "-memory", "20", "-json", "-progress", "0"}, noenv, &out, &errs)
	if err != nil {
		t.Fatalf("bench gateway: %v\n%s", err, errs.String())
	}
	var r GatewayResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if r.Published == 0 || len(r.Memory) != 1 || r.Memory[0].Connected != 20 {
		t.Errorf("published %d, memory %+v: want publishes and 20 clients connected", r.Published, r.Memory)
	}
}

func TestLatencyOf(t *testing.T) {
	if got := latencyOf(nil); got != (Latency{}) {
		t.Errorf("latencyOf(nil) = %+v, want zero", got)
	}
}
