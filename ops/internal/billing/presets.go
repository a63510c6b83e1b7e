package billing

// Preset tariff ids. Accounts name their tariff by id (store.Account.Tariff).
const (
	ZJResTiered     = "zj-res-tiered"         // Zhejiang residential, annual tiers, flat price
	ZJResTOU        = "zj-res-tou"            // Zhejiang residential, annual tiers, peak 8–22 / valley 22–8
	ZJResShared     = "zj-res-shared"         // Zhejiang shared meter (合表), one price
	ZJComFlat       = "zj-com-flat"           // small commercial, one price
	ComTOU          = "com-tou"               // non-residential peak/flat/valley, 1.5 : 1 : 0.5
	JSResTOU        = "js-res-tou"            // Jiangsu-style residential TOU: valley from 21:00
	CNResTieredMon  = "cn-res-tiered-monthly" // national 3-tier pattern, monthly 240 / 400 kWh
	CNResTieredYear = "cn-res-tiered-annual"  // national 3-tier pattern, annual 2880 / 4800 kWh
)

// NationalTiered builds the national three-tier pattern (domain.md §6.1 [S]): tier 2 costs
// tier 1 + 0.05 元/kWh and tier 3 tier 1 + 0.30, with the given boundaries in kWh per period.
func NationalTiered(id, name string, base Price, period Period, tier1KWh, tier2KWh int64) Tariff {
	flat := func(p Price) map[Band]Price { return map[Band]Price{BandFlat: p} }
	return Tariff{
		ID: id, Name: name, Period: period,
		Source: "national pattern, domain.md §6.1 [S]; tier-1 price is a placeholder [K]",
		Tiers: []Tier{
			{UpToKWh: tier1KWh, Prices: flat(base)},
			{UpToKWh: tier2KWh, Prices: flat(base + 500)},
			{Prices: flat(base + 3000)},
		},
	}
}

// Presets returns the preset tariffs of domain.md §6. Numbers marked [S] are published;
// [K] ones are placeholders to replace with the utility's own.
func Presets() []Tariff {
	flat := func(p string) map[Band]Price { return map[Band]Price{BandFlat: MustPrice(p)} }
	pv := func(peak, valley string) map[Band]Price {
		return map[Band]Price{BandPeak: MustPrice(peak), BandValley: MustPrice(valley)}
	}
	resTOU := []Span{{From: "08:00", To: "22:00", Band: BandPeak}, {From: "22:00", To: "08:00", Band: BandValley}}
	comFlat := MustPrice("0.6640")
	return []Tariff{
		{
			ID: ZJResTiered, Name: "浙江居民阶梯电价 (一户一表, 不满1千伏)", Period: Annual,
			Source: "Zhejiang residential table, domain.md §6.1 [S]",
			Tiers: []Tier{
				{UpToKWh: 2760, Prices: flat("0.538")},
				{UpToKWh: 4800, Prices: flat("0.588")},
				{Prices: flat("0.838")},
			},
		},
		{
			ID: ZJResTOU, Name: "浙江居民阶梯峰谷电价", Period: Annual, Schedule: resTOU,
			Source: "Zhejiang residential table [S]; hours 8:00–22:00 peak, 22:00–8:00 valley [K]",
			Tiers: []Tier{
				{UpToKWh: 2760, Prices: pv("0.568", "0.288")},
				{UpToKWh: 4800, Prices: pv("0.618", "0.338")},
				{Prices: pv("0.868", "0.588")},
			},
		},
		{
			ID: ZJResShared, Name: "浙江居民合表电价", Period: Annual,
			Source: "Zhejiang residential table, shared meter [S]",
			Tiers:  []Tier{{Prices: flat("0.558")}},
		},
		{
			ID: ZJComFlat, Name: "一般工商业单一电价", Period: Monthly,
			Source: "placeholder price [K]",
			Tiers:  []Tier{{Prices: map[Band]Price{BandFlat: comFlat}}},
		},
		{
			ID: ComTOU, Name: "一般工商业峰平谷电价", Period: Monthly,
			Source: "hours and ratio 1.5 : 1 : 0.5 from the non-residential example, domain.md §6.2 [S]; flat price placeholder [K]",
			Schedule: []Span{
				{From: "08:00", To: "11:30", Band: BandPeak}, {From: "18:30", To: "23:00", Band: BandPeak},
				{From: "23:00", To: "07:00", Band: BandValley},
				{From: "07:00", To: "08:00", Band: BandFlat}, {From: "11:30", To: "18:30", Band: BandFlat},
			},
			Tiers: []Tier{{Prices: map[Band]Price{BandPeak: comFlat * 3 / 2, BandFlat: comFlat, BandValley: comFlat / 2}}},
		},
		{
			ID: JSResTOU, Name: "居民峰谷电价 (21:00 起谷)", Period: Annual,
			Schedule: []Span{{From: "08:00", To: "21:00", Band: BandPeak}, {From: "21:00", To: "08:00", Band: BandValley}},
			Source:   "Jiangsu-style hours, domain.md §6.2 [K]; prices placeholders [K]",
			Tiers: []Tier{
				{UpToKWh: 2760, Prices: pv("0.5583", "0.3583")},
				{UpToKWh: 4800, Prices: pv("0.6083", "0.4083")},
				{Prices: pv("0.8583", "0.6583")},
			},
		},
		NationalTiered(CNResTieredMon, "居民阶梯电价 (月度, 240/400 kWh)", MustPrice("0.538"), Monthly, 240, 400),
		NationalTiered(CNResTieredYear, "居民阶梯电价 (年度, 2880/4800 kWh)", MustPrice("0.538"), Annual, 2880, 4800),
	}
}

// DefaultCatalog returns a catalog of the presets.
func DefaultCatalog() *Catalog {
	c, err := NewCatalog(Presets()...)
	if err != nil {
		panic("billing: bad preset: " + err.Error()) // programmer error, found by the tests
	}
	return c
}
