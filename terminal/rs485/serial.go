package rs485

// lineSettings are the serial parameters of a DL/T 645 line.
type lineSettings struct {
	Speed    int    // baud
	Parity   string // "N", "E" or "O"
	DataBits int    // 7 or 8
	StopBits int    // 1 or 2
}
