package wire

// Query asks ops for a customer's data on site (the patent's real-time query): by meter,
// account or terminal, answered within DeadlineMS.
type Query struct {
	V          int        `json:"v"`
	ID         string     `json:"id"`
	Handheld   HandheldID `json:"handheld"`
	Meter      MeterID    `json:"meter,omitempty"`
	Account    string     `json:"account,omitempty"`
	Terminal   TerminalID `json:"terminal,omitempty"`
	DeadlineMS int64      `json:"deadline_ms"` // Unix ms after which the answer is useless
}

// Validate reports every problem of the query.
func (q Query) Validate() error {
	var v validation
	if q.V != Version {
		v.addf("v: %d, want %d", q.V, Version)
	}
	if q.ID == "" || len(q.ID) > 128 {
		v.addf("id: must be 1..128 characters")
	}
	if !ValidID(string(q.Handheld)) {
		v.addf("handheld: %q is not a valid id", q.Handheld)
	}
	n := 0
	for _, s := range []string{string(q.Meter), q.Account, string(q.Terminal)} {
		if s != "" {
			n++
			if !ValidID(s) {
				v.addf("%q is not a valid id", s)
			}
		}
	}
	if n != 1 {
		v.addf("name exactly one of meter, account, terminal")
	}
	if q.DeadlineMS <= 0 {
		v.addf("deadline_ms: must be positive")
	}
	return v.err()
}

// Warning is something the reader should know on site: arrears, a low prepaid balance,
// abnormal consumption, a clock far off.
type Warning struct {
	Code     string `json:"code"`     // "arrears", "low_balance", "reverse_running", "spike", "zero_consumption", "clock_drift"
	Severity string `json:"severity"` // "info", "warning", "critical"
	Detail   string `json:"detail,omitempty"`
}

// CustomerInfo is one account's data in an answer.
type CustomerInfo struct {
	Account       string    `json:"account"`
	Owner         string    `json:"owner"`
	Address       string    `json:"address,omitempty"`
	Payment       string    `json:"payment"`     // "prepaid" or "postpaid"
	BalanceFen    int64     `json:"balance_fen"` // negative is arrears
	Meters        []MeterID `json:"meters"`
	PeriodStart   string    `json:"period_start"` // YYYY-MM-DD, the current billing period
	PeriodWh      int64     `json:"period_wh"`    // consumption this period, × multiplier
	LastReadingMS int64     `json:"last_reading_ms,omitempty"`
	Warnings      []Warning `json:"warnings,omitempty"`
}

// Answer is ops' reply to a [Query].
type Answer struct {
	V         int            `json:"v"`
	ID        string         `json:"id"` // the query's id
	Customers []CustomerInfo `json:"customers"`
	Error     string         `json:"error,omitempty"` // "not_found", "invalid", "deadline"
	AsOfMS    int64          `json:"as_of_ms"`
}
