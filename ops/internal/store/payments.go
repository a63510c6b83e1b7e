package store

import (
	"fmt"

	"github.com/tidwall/buntdb"
)

// Payment is money paid into an account (a prepaid top-up or a postpaid settlement).
type Payment struct {
	ID           string    `json:"id"` // chosen by the payment channel; a payment is recorded once per id
	Account      AccountID `json:"account"`
	AmountFen    int64     `json:"amount_fen"`
	Method       string    `json:"method,omitempty"` // e.g. "cash", "wechat", "bank"
	TimeMS       int64     `json:"ts_ms"`
	BalanceAfter int64     `json:"balance_after_fen"` // the account's balance once it was applied
}

// pfxPayment keys payments: pay:{account}:{id}.
const pfxPayment = "pay:"

// Payment returns an account's payment by id; ok is false when there is none.
func (t *Tx) Payment(account AccountID, id string) (p Payment, ok bool, err error) {
	ok, err = get(t.tx, pfxPayment+string(account)+":"+id, &p)
	return p, ok, err
}

// PutPayment stores a payment record.
func (t *Tx) PutPayment(p Payment) error {
	return set(t.tx, pfxPayment+string(p.Account)+":"+p.ID, p)
}

// Payments returns an account's payments, by id.
func (s *DB) Payments(account AccountID) ([]Payment, error) {
	var out []Payment
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		out, err = list[Payment](tx, pfxPayment+string(account)+":")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payments of %s: %w", account, err)
	}
	return out, nil
}
