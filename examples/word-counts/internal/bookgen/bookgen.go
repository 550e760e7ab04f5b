// Package bookgen writes the text bundled with the word-counts example: a
// short "book" of made-up prose with a Title line and chapters headed
// "CHAPTER <roman numeral>.", the shape the example's book-split step
// expects.
//
// The text is generated, not taken from anywhere, so the example carries
// no third-party text. Generation is deterministic (its own splitmix64
// generator, no library PRNG whose sequence could change between Go
// releases): the committed book.txt is exactly Generate(), and a test of
// the example checks that.
package bookgen

import (
	"bytes"
	"fmt"
	"strings"
)

// Title is the title the generated book carries on its "Title:" line.
const Title = "The Keeper of Harrow Light"

// Chapters is the number of chapters generated.
const Chapters = 7

// vocabulary is drawn from with a Zipf-like weight: earlier words are
// picked more often, so the counts have a clear top ten, as real prose does.
var vocabulary = strings.Fields(`
the and of a to in was she he it that with her his on at for as they but
had from light sea keeper lamp tower night wind stone boat rope harbour
water old long came went said little over into all would could were there
when one were their not by this them out down then like upon its be no
grey storm ledger door stair glass wick oil salt tide rock gull bell
lantern morning evening cold dark bright quiet loud slow weathered
island shore cliff path gate window table chair bread tea fire kettle
letter map compass clock hour minute year winter summer spring autumn
fisherman's keeper's harbourmaster's didn't wasn't couldn't
mara tobias elin ferry brann orla
climbed watched counted wrote listened waited carried mended trimmed
polished opened closed remembered forgot answered asked called turned
slowly carefully again always never still almost only perhaps
between beneath beyond above under across along behind toward
small heavy narrow wide broken patient tired careful distant nearer
fog current reef channel beacon signal mast sail oar net hook
`)

// rng is splitmix64: tiny, fast, and fixed forever, unlike math/rand's
// sequences.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// word picks a word, favouring the front of the vocabulary: the minimum of
// two uniform draws, then a third for the most common words.
func (r *rng) word() string {
	i := min(r.intn(len(vocabulary)), r.intn(len(vocabulary)))
	if r.intn(3) == 0 {
		i = min(i, r.intn(len(vocabulary)))
	}
	return vocabulary[i]
}

// Roman returns n (1..3999) as an upper-case Roman numeral.
func Roman(n int) string {
	values := []int{1000, 900, 500, 400, 100, 90, 50, 40, 10, 9, 5, 4, 1}
	symbols := []string{"M", "CM", "D", "CD", "C", "XC", "L", "XL", "X", "IX", "V", "IV", "I"}
	var b strings.Builder
	for i, v := range values {
		for n >= v {
			b.WriteString(symbols[i])
			n -= v
		}
	}
	return b.String()
}

// Generate returns the whole book. The same call always returns the same
// bytes.
func Generate() []byte {
	var b bytes.Buffer
	r := rng(20260925)
	fmt.Fprintf(&b, "Title: %s\n", Title)
	b.WriteString("Author: generated for the Stepwise word-counts example\n")
	b.WriteString("Note: every sentence below is made up by a small deterministic generator.\n\n")
	for c := 1; c <= Chapters; c++ {
		fmt.Fprintf(&b, "\nCHAPTER %s.\n\n", Roman(c))
		paragraphs := 12 + r.intn(6)
		for range paragraphs {
			writeParagraph(&b, &r)
			b.WriteString("\n\n")
		}
	}
	return b.Bytes()
}

// writeParagraph writes 3 to 6 sentences wrapped at about 72 columns.
func writeParagraph(b *bytes.Buffer, r *rng) {
	col := 0
	sentences := 3 + r.intn(4)
	for s := range sentences {
		words := 6 + r.intn(13)
		for i := range words {
			w := r.word()
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			switch {
			case i == words-1 && r.intn(5) == 0:
				w += "?"
			case i == words-1:
				w += "."
			case r.intn(9) == 0:
				w += ","
			case r.intn(40) == 0:
				w += ";"
			}
			sep := " "
			if s == 0 && i == 0 {
				sep = ""
			} else if col+1+len(w) > 72 {
				sep, col = "\n", 0
			}
			b.WriteString(sep)
			if sep == " " {
				col++
			}
			b.WriteString(w)
			col += len(w)
		}
	}
}
