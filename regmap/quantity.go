package regmap

import (
	"maps"
	"slices"
)

// Quantity names the poller relies on. Every name a map may use is in
// [Quantities]; a map that uses another name is invalid, which catches
// typos such as "improt_kwh".
const (
	ImportEnergy = "import_kwh" // forward (import) active energy, kWh; every map has it
	ExportEnergy = "export_kwh" // reverse (export) active energy, kWh
	TotalEnergy  = "total_kwh"  // import + export, kWh
	Power        = "power"      // total active power, W
	Voltage      = "voltage"    // single-phase voltage, V
	VoltageL1    = "voltage_l1" // phase 1 to neutral voltage, V
	Current      = "current"    // single-phase current, A
	CurrentL1    = "current_l1" // phase 1 current, A
	Frequency    = "frequency"  // grid frequency, Hz
)

// units holds every known quantity and its canonical unit; "" is a
// dimensionless number such as a power factor or a raw setting.
var units = func() map[string]string {
	perPhase := map[string]string{
		Voltage: "V", Current: "A", Power: "W", "apparent": "VA", "reactive": "var", "pf": "",
		"thd_voltage": "%", ImportEnergy: "kWh", ExportEnergy: "kWh", TotalEnergy: "kWh",
	}
	u := map[string]string{
		Frequency: "Hz", "import_kvarh": "kvarh", "export_kvarh": "kvarh", "total_kvarh": "kvarh",
		"voltage_l1_l2": "V", "voltage_l2_l3": "V", "voltage_l3_l1": "V",
		"line_config": "", // DDS238: high byte slave id, low byte baud code
	}
	for q, unit := range perPhase {
		if q != "thd_voltage" {
			u[q] = unit // total or single-phase
		}
		for _, ph := range []string{"_l1", "_l2", "_l3"} {
			u[q+ph] = unit
		}
	}
	return u
}()

// Unit returns the canonical unit of quantity q ("" for ratios) and
// whether q is a known quantity.
func Unit(q string) (string, bool) {
	u, ok := units[q]
	return u, ok
}

// Quantities returns every known quantity name, sorted.
func Quantities() []string {
	return slices.Sorted(maps.Keys(units))
}
