package metersim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/meterlink/meterlink/regmap"
)

// Modbus exception codes the simulated meters send (domain.md §3.1).
const (
	exIllegalFunction = 0x01 // function code not supported (FC06 on every model)
	exIllegalAddress  = 0x02 // a register outside the map, or the wrong table
	exIllegalValue    = 0x03 // malformed quantity or byte count
	exDeviceFailure   = 0x04 // a value the register cannot hold
	exGatewayNoReply  = 0x0B // TCP only: the addressed unit is silent or absent
)

// ModbusMeter is a simulated Modbus meter that answers reads of one
// register map (a shipped [regmap.Map]) with its current values: import
// and export energy kept in whole Wh, and voltage, current, power and any
// other quantity of the map in its canonical unit. Values change only when
// a test or a load profile drives them ([ModbusMeter.Advance]). Serve
// meters with a [ModbusBus]. All methods are safe for concurrent use.
type ModbusMeter struct {
	unit  uint8
	regs  regmap.Map
	index map[uint16]regSlot // address → register and word within it

	mu       sync.Mutex
	importWh int64
	exportWh int64
	vals     map[string]float64 // other quantities, canonical units
	silent   bool
	profile  Profile
	rng      *rand.Rand
	fracWh   float64 // energy owed by Advance but not yet a whole Wh
}

type regSlot struct {
	reg  int // index in regs.Registers
	word int // word of the register at this address
}

// NewModbusMeter returns a meter at Modbus unit id unit (1..247) that
// answers the shipped register map mapName (see [regmap.Names]). It
// starts at 0 Wh, 230 V, 0 A, 0 W, 50 Hz and PF 1, with the [Household]
// profile for [ModbusMeter.Advance].
func NewModbusMeter(mapName string, unit uint8) (*ModbusMeter, error) {
	m, err := regmap.Lookup(mapName)
	if err != nil {
		return nil, err
	}
	return NewModbusMeterMap(m, unit)
}

// NewModbusMeterMap is [NewModbusMeter] with a map that need not be
// shipped, such as one a test built or [regmap.Parse] read.
func NewModbusMeterMap(m regmap.Map, unit uint8) (*ModbusMeter, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if unit < 1 || unit > 247 {
		return nil, fmt.Errorf("modbus meter %s: unit id %d out of 1..247", m.Name, unit)
	}
	mm := &ModbusMeter{
		unit: unit, regs: m, index: map[uint16]regSlot{},
		vals:    map[string]float64{},
		profile: Household,
		rng:     rand.New(rand.NewPCG(uint64(unit), 0x6d6f64627573)),
	}
	for i, r := range m.Registers {
		for w := range r.Words {
			mm.index[uint16(int(r.Address)+w)] = regSlot{reg: i, word: w}
		}
	}
	mm.SetVoltage(230)
	mm.vals[regmap.Frequency] = 50
	mm.setPhases("pf", 1)
	return mm, nil
}

// Unit returns the meter's Modbus unit id.
func (m *ModbusMeter) Unit() uint8 { return m.unit }

// Map returns the meter's register map.
func (m *ModbusMeter) Map() regmap.Map { return m.regs }

// EnergyWh returns the import (forward active) energy, Wh.
func (m *ModbusMeter) EnergyWh() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.importWh
}

// SetEnergyWh sets the import energy, Wh.
func (m *ModbusMeter) SetEnergyWh(wh int64) {
	m.mu.Lock()
	m.importWh = wh
	m.mu.Unlock()
}

// AddEnergyWh adds wh to the import energy and returns the new total.
func (m *ModbusMeter) AddEnergyWh(wh int64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.importWh += wh
	return m.importWh
}

// SetExportWh sets the export (reverse active) energy, Wh.
func (m *ModbusMeter) SetExportWh(wh int64) {
	m.mu.Lock()
	m.exportWh = wh
	m.mu.Unlock()
}

// SetVoltage sets the phase voltage, V, on every phase; line-to-line
// voltages become v × √3.
func (m *ModbusMeter) SetVoltage(v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setPhases(regmap.Voltage, v)
	for _, q := range []string{"voltage_l1_l2", "voltage_l2_l3", "voltage_l3_l1"} {
		m.vals[q] = v * math.Sqrt(3)
	}
}

// SetCurrent sets the current, A, on every phase.
func (m *ModbusMeter) SetCurrent(a float64) {
	m.mu.Lock()
	m.setPhases(regmap.Current, a)
	m.mu.Unlock()
}

// SetPower sets the total active power, W, split evenly over the phases
// of a three-phase map.
func (m *ModbusMeter) SetPower(w float64) {
	m.mu.Lock()
	m.setPower(w)
	m.mu.Unlock()
}

func (m *ModbusMeter) setPower(w float64) {
	m.vals[regmap.Power] = w
	for _, ph := range []string{"_l1", "_l2", "_l3"} {
		m.vals[regmap.Power+ph] = w / 3
	}
}

// setPhases sets a quantity and its _l1.._l3 variants; m.mu is held.
func (m *ModbusMeter) setPhases(q string, v float64) {
	m.vals[q] = v
	for _, ph := range []string{"_l1", "_l2", "_l3"} {
		m.vals[q+ph] = v
	}
}

// Set sets any quantity other than the energies, in its canonical unit
// (see [regmap.Unit]).
func (m *ModbusMeter) Set(quantity string, v float64) error {
	if _, ok := regmap.Unit(quantity); !ok || strings.HasSuffix(quantity, "_kwh") || strings.Contains(quantity, "_kwh_") {
		return fmt.Errorf("set %q: not a settable quantity", quantity)
	}
	m.mu.Lock()
	m.vals[quantity] = v
	m.mu.Unlock()
	return nil
}

// Value returns the value of quantity as the meter would send it, before
// encoding, in its canonical unit.
func (m *ModbusMeter) Value(quantity string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.value(quantity)
}

// value derives the energies from the Wh counters: per-phase energy is a
// third of the total. m.mu is held.
func (m *ModbusMeter) value(q string) float64 {
	third := func(wh int64) float64 { return float64(wh) / 3000 }
	switch q {
	case regmap.ImportEnergy:
		return float64(m.importWh) / 1000
	case regmap.ExportEnergy:
		return float64(m.exportWh) / 1000
	case regmap.TotalEnergy:
		return float64(m.importWh+m.exportWh) / 1000
	case "import_kwh_l1", "import_kwh_l2", "import_kwh_l3":
		return third(m.importWh)
	case "export_kwh_l1", "export_kwh_l2", "export_kwh_l3":
		return third(m.exportWh)
	case "total_kwh_l1", "total_kwh_l2", "total_kwh_l3":
		return third(m.importWh + m.exportWh)
	}
	return m.vals[q]
}

// SetSilent makes the meter stop answering (true) or answer again. A
// silent meter on an RTU link sends nothing; over Modbus TCP the server
// answers exception 0x0B (gateway target failed to respond), as an
// RS-485 gateway does.
func (m *ModbusMeter) SetSilent(silent bool) {
	m.mu.Lock()
	m.silent = silent
	m.mu.Unlock()
}

func (m *ModbusMeter) isSilent() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.silent
}

// SetProfile sets the load curve [ModbusMeter.Advance] follows.
func (m *ModbusMeter) SetProfile(p Profile) {
	m.mu.Lock()
	m.profile = p
	m.mu.Unlock()
}

// Advance runs the meter's load profile for d of consumption ending at t:
// power (and current, at the present voltage) follow the profile, and the
// import energy grows by power × d. It returns the whole Wh added;
// fractions are carried to the next call.
func (m *ModbusMeter) Advance(t time.Time, d time.Duration) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.profile.PowerW(t, m.rng)
	m.setPower(w)
	if v := m.vals[regmap.Voltage]; v > 0 {
		m.setPhases(regmap.Current, w/v)
	}
	m.fracWh += w * d.Hours()
	n := int64(math.Floor(m.fracWh))
	m.fracWh -= float64(n)
	m.importWh += n
	return n
}

// readRegisters answers FC03/FC04: the words at addr..addr+qty−1, or an
// exception code. Unmapped addresses (outside the map's reserved spans)
// and the table the map does not use give exception 02.
func (m *ModbusMeter) readRegisters(fc uint8, addr, qty uint16) ([]uint16, byte) {
	if fc != m.regs.Function {
		return nil, exIllegalAddress
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint16, 0, qty)
	cache := map[int][]uint16{}
	for a := int(addr); a < int(addr)+int(qty); a++ {
		slot, ok := m.index[uint16(a)]
		if !ok {
			if a > 0xFFFF || !m.regs.IsReserved(regmap.Address(a)) {
				return nil, exIllegalAddress
			}
			out = append(out, 0)
			continue
		}
		w, ok := cache[slot.reg]
		if !ok {
			r := m.regs.Registers[slot.reg]
			var err error
			if w, err = r.Encode(m.value(r.Quantity)); err != nil {
				return nil, exDeviceFailure
			}
			cache[slot.reg] = w
		}
		out = append(out, w[slot.word])
	}
	return out, 0
}

// writeRegisters answers FC16. Every word must belong to a writable
// register, and the write must cover whole registers. Writing total
// energy sets the import counter so that import + export equals it; 0
// clears both counters, as on a DDS238.
func (m *ModbusMeter) writeRegisters(addr uint16, words []uint16) byte {
	if m.regs.Function != regmap.ReadHolding {
		return exIllegalAddress
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	type write struct {
		r regmap.Register
		v float64
	}
	var writes []write
	for i := 0; i < len(words); {
		slot, ok := m.index[uint16(int(addr)+i)]
		if !ok || slot.word != 0 {
			return exIllegalAddress
		}
		r := m.regs.Registers[slot.reg]
		if !r.Writable || i+r.Words > len(words) {
			return exIllegalAddress
		}
		v, err := r.Decode(words[i : i+r.Words])
		if err != nil {
			return exIllegalValue
		}
		writes = append(writes, write{r, v})
		i += r.Words
	}
	for _, w := range writes {
		switch w.r.Quantity {
		case regmap.TotalEnergy:
			wh := int64(math.Round(w.v * 1000))
			if wh == 0 {
				m.importWh, m.exportWh = 0, 0
			} else {
				m.importWh = wh - m.exportWh
			}
		case regmap.ImportEnergy:
			m.importWh = int64(math.Round(w.v * 1000))
		case regmap.ExportEnergy:
			m.exportWh = int64(math.Round(w.v * 1000))
		default:
			m.vals[w.r.Quantity] = w.v
		}
	}
	return 0
}
