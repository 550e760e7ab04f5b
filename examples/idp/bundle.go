package idp

// Bundle is the request input's "bundle": the documents of one scan batch.
type Bundle struct {
	Documents []Document `json:"documents"`
}

// Document is one document of a bundle: a name and the text of each page.
type Document struct {
	Name  string   `json:"name"`
	Pages []string `json:"pages"`
}

// DefaultBundle is processed when a request has no "bundle": an invoice of
// two pages, a contract of four and a letter of one. The texts are made up
// for the example.
func DefaultBundle() Bundle {
	return Bundle{Documents: []Document{
		{Name: "invoice-0042.pdf", Pages: []string{
			"Harrow Marine Supplies\n12 Quay Street, Harrow\n\n" +
				"INVOICE\nInvoice No. INV-2026-0042\nDate: 2026-09-01\nBill to: Harrow Light Trust\n\n" +
				"3 x lamp wick, cotton ........ 12.00\n2 x lantern glass, 30 cm ..... 84.50\n",
			"Subtotal: 96.50\nVAT 20%: 19.30\nTotal due: EUR 115.80\nDue date: 2026-10-01\n\n" +
				"Please quote the invoice number with your payment.\nThank you for your business.\n",
		}},
		{Name: "service-agreement.pdf", Pages: []string{
			"SERVICE AGREEMENT\n\nThis agreement is made between Harrow Light Trust and Orla Brann, " +
				"keeper, (together the parties).\nEffective date: 2026-10-15\n",
			"1. Term. The term of this agreement is twelve months from the effective date.\n\n" +
				"2. Duties. The keeper shall trim, fill and light the lamp each evening.\n",
			"3. Payment. The trust shall pay the keeper monthly in arrears.\n\n" +
				"4. Notice. Either party may end this agreement with one month's notice in writing.\n",
			"Signed for the parties hereby:\n\nHarrow Light Trust\n\nOrla Brann\n",
		}},
		{Name: "letter-from-mara.pdf", Pages: []string{
			"Harrow, 2026-09-20\n\nDear Mr Tobias Wren,\n\n" +
				"The lamp on the north stair has been dim for a week. Could the trust send new wicks\n" +
				"before the winter storms?\n\nSincerely,\nMara Ellis\n",
		}},
	}}
}
