package metersim

import (
	"bytes"
	"testing"

	"github.com/meterlink/meterlink/regmap"
)

// FuzzRTURequest splits arbitrary bytes into request frames as ServeRTU
// does and answers them with a bus holding every shipped map. Frames must
// carry a good CRC, the scan must always make progress, and every reply
// must be a well-formed frame from the addressed unit. Seeds are in
// testdata/fuzz/FuzzRTURequest.
func FuzzRTURequest(f *testing.F) {
	f.Add(unhex(f, "01 04 00 00 00 02 71 CB"))
	f.Add(unhex(f, "01 03 00 00 00 12 C5 C7"))
	var meters []*ModbusMeter
	for i, name := range regmap.Names() {
		meters = append(meters, newMeter(f, name, uint8(i+1)))
	}
	b := newBus(f, meters...)
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := append([]byte(nil), data...)
		for steps := 0; len(buf) > 0; steps++ {
			if steps > len(data) {
				t.Fatalf("scan made no progress on % X", buf)
			}
			k := scanRequest(buf)
			if k == 0 {
				break
			}
			if k < 0 {
				buf = buf[1:]
				continue
			}
			if k > len(buf) || k > maxRTUFrame || !crcOK(buf[:k]) {
				t.Fatalf("scanRequest(% X) = %d: not a whole frame with a good CRC", buf, k)
			}
			req := buf[:k]
			reply := b.handleFrame(req)
			if reply != nil {
				if !crcOK(reply) || len(reply) > maxRTUFrame || reply[0] != req[0] || reply[1]|0x80 != req[1]|0x80 {
					t.Fatalf("reply to % X = % X: malformed", req, reply)
				}
				if reply[1]&0x80 == 0 && (req[1] == 0x03 || req[1] == 0x04) && int(reply[2]) != len(reply)-5 {
					t.Fatalf("reply to % X = % X: byte count does not match", req, reply)
				}
			}
			if bytes.Equal(buf, data) && k == len(data) && reply == nil && req[0] != 0 && b.Meter(req[0]) != nil {
				t.Fatalf("no reply to % X for a meter on the bus", req)
			}
			buf = buf[k:]
		}
	})
}
