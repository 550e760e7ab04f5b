package idp_test

import (
	"fmt"

	"github.com/stepwise-run/stepwise/examples/idp"
)

func ExampleExtract() {
	text := "Invoice No. A-7\nBill to: Harrow Light Trust\nTotal due: EUR 12.00\n"
	class := idp.Classify(text)
	fields := idp.Extract(class, text)
	fmt.Println(class, fields["invoice_number"], fields["total"], fields["bill_to"])
	// Output: invoice A-7 EUR 12.00 Harrow Light Trust
}
