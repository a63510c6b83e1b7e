package metersim

import (
	"errors"
	"log"
	"math"
	"testing"
	"time"

	"github.com/meterlink/meterlink/regmap"
	"github.com/simonvetter/modbus"
)

// tcpClient dials srv with simonvetter's client, closed in t.Cleanup.
func tcpClient(t *testing.T, srv *ModbusTCPServer, unit uint8) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: srv.URL(), Timeout: 2 * time.Second, Logger: log.New(t.Output(), "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatalf("open %s: %v", srv.URL(), err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetUnitId(unit)
	return c
}

func listen(t *testing.T, b *ModbusBus) *ModbusTCPServer {
	t.Helper()
	srv, err := b.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestModbusTCP(t *testing.T) {
	sdm := newMeter(t, "sdm630", 1)
	sdm.SetEnergyWh(478492)
	sdm.SetPower(1500)
	dds := newMeter(t, "dds238-2", 2)
	dds.SetEnergyWh(12340)
	silent := newMeter(t, "sdm120", 3)
	silent.SetSilent(true)
	srv := listen(t, newBus(t, sdm, dds, silent))

	c := tcpClient(t, srv, 1)
	if v, err := c.ReadFloat32(0x0048, modbus.INPUT_REGISTER); err != nil || v != float32(478.492) {
		t.Errorf("SDM630 import = %v, %v, want 478.492", v, err)
	}
	if v, err := c.ReadFloat32(0x000E, modbus.INPUT_REGISTER); err != nil || v != 500 {
		t.Errorf("SDM630 power L2 = %v, %v, want 500", v, err)
	}
	if _, err := c.ReadFloat32(0x0002, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("FC03 to an FC04 meter: error %v, want illegal data address", err)
	}
	if _, err := c.ReadRegisters(0x0040, 2, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("unmapped register: error %v, want illegal data address", err)
	}

	_ = c.SetUnitId(2)
	if v, err := c.ReadUint32(0x000A, modbus.HOLDING_REGISTER); err != nil || v != 1234 {
		t.Errorf("DDS238 import = %v, %v, want 1234 (× 0.01 kWh)", v, err)
	}
	if err := c.WriteRegisters(0x0000, []uint16{0, 0}); err != nil {
		t.Errorf("DDS238 clear: %v", err)
	}
	if got := dds.EnergyWh(); got != 0 {
		t.Errorf("DDS238 energy after clear = %d Wh, want 0", got)
	}

	_ = c.SetUnitId(3)
	if _, err := c.ReadRegisters(0, 2, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrGWTargetFailedToRespond) {
		t.Errorf("silent meter: error %v, want gateway target failed to respond", err)
	}
	_ = c.SetUnitId(9)
	if _, err := c.ReadRegisters(0, 2, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrGWTargetFailedToRespond) {
		t.Errorf("absent meter: error %v, want gateway target failed to respond", err)
	}
}

func TestModbusBusDuplicateUnit(t *testing.T) {
	_, err := NewModbusBus(newMeter(t, "sdm120", 1), newMeter(t, "sdm630", 1))
	if !errors.Is(err, ErrUnitInUse) {
		t.Errorf("NewModbusBus(two meters at unit 1) error = %v, want ErrUnitInUse", err)
	}
}

func TestNewModbusMeterErrors(t *testing.T) {
	if _, err := NewModbusMeter("sdm72", 1); !errors.Is(err, regmap.ErrUnknownMap) {
		t.Errorf("unknown map: error %v, want ErrUnknownMap", err)
	}
	if _, err := NewModbusMeter("sdm120", 0); err == nil {
		t.Error("unit 0: no error")
	}
	if _, err := NewModbusMeter("sdm120", 248); err == nil {
		t.Error("unit 248: no error")
	}
}

func TestModbusMeterValues(t *testing.T) {
	m := newMeter(t, "dtsu666", 1)
	m.SetVoltage(230)
	m.SetCurrent(4.5)
	m.SetPower(3000)
	m.SetEnergyWh(9000)
	m.SetExportWh(300)
	if err := m.Set("frequency", 49.98); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("import_kwh", 1); err == nil {
		t.Error("Set(import_kwh): no error; energies go through SetEnergyWh")
	}
	if got := m.AddEnergyWh(1000); got != 10000 {
		t.Errorf("AddEnergyWh(1000) = %d, want 10000", got)
	}
	tests := []struct {
		q    string
		want float64
	}{
		{"voltage_l2", 230}, {"voltage_l1_l2", 230 * math.Sqrt(3)}, {"current_l3", 4.5}, {"power", 3000},
		{"power_l1", 1000}, {"import_kwh", 10}, {"export_kwh", 0.3}, {"import_kwh_l2", 10.0 / 3},
		{"total_kwh", 10.3}, {"frequency", 49.98}, {"pf", 1},
	}
	for _, tt := range tests {
		if got := m.Value(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Value(%s) = %v, want %v", tt.q, got, tt.want)
		}
	}
	// The register carries the scaled value: 230 V is 2300 in 0.1 V.
	words, ex := m.readRegisters(regmap.ReadHolding, 0x2006, 2)
	if ex != 0 || math.Float32frombits(uint32(words[0])<<16|uint32(words[1])) != 2300 {
		t.Errorf("Ua register = %04x, exception %d, want float32 2300", words, ex)
	}
}

func TestModbusMeterAdvance(t *testing.T) {
	m := newMeter(t, "sdm120", 1)
	m.SetProfile(Profile{BaseW: 1000}) // flat 1 kW, no noise
	at := time.Date(2024, 5, 6, 3, 0, 0, 0, time.UTC)
	var sum int64
	for range 50 {
		sum += m.Advance(at, 36*time.Second) // 1 kW × 36 s = 10 Wh
	}
	if sum != 500 || m.EnergyWh() != 500 {
		t.Errorf("30 min at 1 kW: added %d Wh, meter at %d Wh, want 500", sum, m.EnergyWh())
	}
	if got := m.Value("current"); math.Abs(got-1000.0/230) > 1e-9 {
		t.Errorf("current = %v A, want %v", got, 1000.0/230)
	}
}
