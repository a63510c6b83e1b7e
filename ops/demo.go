package ops

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// demoPeople are owner names for demo accounts: Chinese name and pinyin.
var demoPeople = []string{
	"张伟 Zhang Wei", "王芳 Wang Fang", "李娜 Li Na", "刘洋 Liu Yang", "陈静 Chen Jing",
	"杨磊 Yang Lei", "赵敏 Zhao Min", "黄勇 Huang Yong", "周婷 Zhou Ting", "吴强 Wu Qiang",
	"徐丽 Xu Li", "孙杰 Sun Jie", "胡军 Hu Jun", "朱琳 Zhu Lin", "高峰 Gao Feng",
	"林秀英 Lin Xiuying", "何建国 He Jianguo", "郭海燕 Guo Haiyan", "马志强 Ma Zhiqiang", "罗桂兰 Luo Guilan",
}

// demoStreets are addresses' streets (Hangzhou, Zhejiang: the tariffs of domain.md §6.1).
var demoStreets = []string{
	"浙江省杭州市西湖区文三路", "浙江省杭州市拱墅区湖墅南路", "浙江省杭州市上城区解放路",
	"浙江省杭州市滨江区江南大道", "浙江省杭州市余杭区文一西路", "浙江省杭州市萧山区人民路",
}

// demoDistrictNames name demo districts (台区) after their transformer.
var demoDistrictNames = []string{"文三新村1号变", "湖墅花园2号变", "解放路3号箱变", "江南大道4号变", "文一西路5号变", "人民路6号箱变"}

// Demo tariff ids (billing will define them; see domain.md §6).
const (
	demoTariffTiered = "zj-res-tiered" // Zhejiang residential, annual tiers
	demoTariffTOU    = "zj-res-tou"    // Zhejiang residential, tiers with peak/valley
	demoTariffShop   = "zj-com-flat"   // small commercial, CT metered
)

// DemoDataset returns a realistic, reproducible demo dataset for the lab: districts
// D01.., each with terminalsPerDistrict terminals (T0101..; 99 at most per district for
// readable ids) of 8 to 16 metered channels
// with impulse constants 1600, 3200 or 6400 imp/kWh and base readings, one meter and one
// customer account per channel (Chinese owners with pinyin, prepaid and postpaid,
// balances in fen), and one PDA per district (P01..). The same seed gives the same
// dataset. The PDAs' SIDs are derived from the seed: demo only, never for a real PDA.
func DemoDataset(districts, terminalsPerDistrict int, seed uint64) Dataset {
	r := rand.New(rand.NewPCG(seed, 0x6d657465726c696e))
	created := time.Date(2026, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixMilli()
	var ds Dataset
	for d := 1; d <= districts; d++ {
		did := wire.DistrictID(fmt.Sprintf("D%02d", d))
		ds.Districts = append(ds.Districts, District{ID: did, Name: demoDistrictNames[(d-1)%len(demoDistrictNames)]})
		pda := wire.PDAID(fmt.Sprintf("P%02d", d))
		ds.PDAs = append(ds.PDAs, PDA{ID: pda, SID: DemoSID(seed, string(pda)), State: PDAEnrolled, CreatedMS: created})
		street := demoStreets[(d-1)%len(demoStreets)]
		for t := 1; t <= terminalsPerDistrict; t++ {
			tid := wire.TerminalID(fmt.Sprintf("T%02d%02d", d, t))
			term := Terminal{ID: tid, District: did}
			building := r.IntN(200) + 1
			n := 8 + r.IntN(9)
			for ch := 1; ch <= n; ch++ {
				mid := wire.MeterID(fmt.Sprintf("00%04d%04d%02d", d%10000, t%10000, ch)) // 12 digits, as a DL/T 645 address
				aid := AccountID(fmt.Sprintf("A%02d%02d%02d", d, t, ch))
				shop := ch == 16 // the last channel of a full terminal is a CT-metered shop
				c := Channel{
					Channel: uint8(ch), Meter: mid,
					Constant:   []uint32{1600, 3200, 6400}[r.IntN(3)],
					BaseWh:     int64(r.IntN(20000)) * 1000,
					Multiplier: 1,
				}
				acc := Account{
					ID: aid, Owner: demoPeople[r.IntN(len(demoPeople))],
					Address: fmt.Sprintf("%s%d号%d单元%d室", street, building, ch/5+1, 101+100*(ch%6)+ch%2),
					Tariff:  demoTariffTiered,
				}
				if r.IntN(10) < 6 {
					acc.Payment, acc.BalanceFen = Prepaid, int64(r.IntN(50000))
				} else {
					acc.Payment, acc.BalanceFen = Postpaid, -int64(r.IntN(4))*int64(r.IntN(15000))
				}
				if r.IntN(4) == 0 {
					acc.Tariff = demoTariffTOU
				}
				if shop {
					c.Multiplier, c.Constant = 30, 6400 // 150/5 A current transformer
					acc.Owner, acc.Tariff, acc.Payment = "便利店 "+acc.Owner, demoTariffShop, Postpaid
				}
				term.Channels = append(term.Channels, c)
				ds.Accounts = append(ds.Accounts, acc)
				ds.Meters = append(ds.Meters, Meter{ID: mid, Terminal: tid, Channel: uint8(ch), Account: aid})
			}
			ds.Terminals = append(ds.Terminals, term)
		}
	}
	return ds
}

// DemoSID derives a demo PDA's SID from the demo seed, so that the lab can hand the same SID
// to the PDA bridge. Never use it for a real PDA.
func DemoSID(seed uint64, pda string) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h := sha256.New()
	h.Write([]byte("meterlink demo sid|"))
	h.Write(b[:])
	h.Write([]byte(pda))
	return h.Sum(nil)
}
